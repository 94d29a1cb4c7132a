"""Hashing file bytes: pread into a buffer, or in the page cache through a mapping (decision 0020).

    python benchmarks/hash_read.py [--scale 1.0] [--runs 3] [--work /var/tmp/dms-bench]

DMS reads bytes only to hash them in three places: the sender (which sendfile()s them), the local
copier after copy_file_range, and the re-reads that verify staged files. This measures that read
alone, both ways, in one run, on the L dataset of `benchmarks.run` (made under --work if missing):
cold (after `sync` and a dropped page cache, when root) and warm (right after). It prints wall time
and the CPU seconds of this process (user + system), medians with min-max, and the ratio of the
pread way's CPU to the mapped way's.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import drop_caches  # noqa: E402
from benchmarks.datasets import datasets, generate  # noqa: E402
from dms import native  # noqa: E402

WAYS = {"pread": False, "mapped": True}


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def hash_all(files: list[Path], mapped: bool) -> tuple[float, float, list[str]]:
    t, c = time.perf_counter(), cpu_seconds()
    digests = [native.hash_range(f, 0, f.stat().st_size, mapped=mapped) for f in files]
    return time.perf_counter() - t, cpu_seconds() - c, digests


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="dataset scale (1.0: L is 4 x 1 GiB)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/var/tmp/dms-bench"), help="where benchmarks.run keeps data")
    args = ap.parse_args()
    ds = datasets(args.scale)["L"]
    src = generate(ds, args.work / "data")
    files = [src / ds.relpath(i) for i in range(ds.files)]
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    seen: set[tuple[str, ...]] = set()
    for _ in range(args.runs):
        for way, mapped in WAYS.items():  # alternate, so drift hits both alike
            drop_caches()
            cold = hash_all(files, mapped)
            warm = hash_all(files, mapped)
            seen.update({tuple(cold[2]), tuple(warm[2])})
            if len(seen) != 1:
                sys.exit(f"{way}: digests differ between reads or ways of reading the same files")
            results.setdefault((way, "cold"), []).append(cold[:2])
            results.setdefault((way, "warm"), []).append(warm[:2])
    gib = ds.total_bytes / 2**30
    print(f"L: {ds.describe()} ({gib:.1f} GiB), {args.runs} runs, medians (min-max)")
    for cache in ("cold", "warm"):
        cpu = {}
        for way in WAYS:
            walls = [w for w, _ in results[(way, cache)]]
            cpus = [c for _, c in results[(way, cache)]]
            cpu[way] = statistics.median(cpus)
            wall = f"wall {statistics.median(walls):5.2f} s ({min(walls):.2f}-{max(walls):.2f})"
            used = f"CPU {cpu[way]:5.2f} s ({min(cpus):.2f}-{max(cpus):.2f})"
            print(f"  {cache} {way:7s} {wall}  {used}  {cpu[way] / gib:.3f} CPU-s/GiB")
        print(f"  {cache}: pread uses {cpu['pread'] / cpu['mapped']:.2f} x the CPU of mapped")


if __name__ == "__main__":
    main()
