"""Hashing file bytes: pread into a buffer, or in the page cache through a mapping (decision 0020).

    python benchmarks/hash_read.py [--files 4] [--size-mib 1024] [--runs 3] [--dir /var/tmp/dms-bench/data/L]

DMS reads bytes only to hash them in three places: the sender (which sendfile()s them), the local
copier after copy_file_range, and the re-reads that verify staged files. This measures that read
alone, both ways, on the same files in one run: cold (after `sync` and a dropped page cache, when
root) and warm (right after). It prints wall time and the CPU seconds of this process (user +
system), medians with min-max, and the ratio of the pread way's CPU to the mapped way's.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

from dms import native

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import drop_caches

WAYS = {"pread": False, "mapped": True}


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def hash_all(files: list[Path], mapped: bool) -> tuple[float, float, list[str]]:
    t, c = time.perf_counter(), cpu_seconds()
    digests = [native.hash_range(f, 0, f.stat().st_size, mapped=mapped) for f in files]
    return time.perf_counter() - t, cpu_seconds() - c, digests


def ensure_files(where: Path, count: int, size_mib: int) -> list[Path]:
    where.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        f = where / f"f{i:06d}.bin"
        if not f.exists() or f.stat().st_size != size_mib << 20:
            with open(f, "wb") as out:
                for _ in range(size_mib):
                    out.write(os.urandom(1 << 20))
        files.append(f)
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp/dms-bench/hash-read"))
    args = ap.parse_args()
    files = ensure_files(args.dir, args.files, args.size_mib)
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
    gib = args.files * args.size_mib / 1024
    print(f"{args.files} x {args.size_mib} MiB ({gib:.1f} GiB), {args.runs} runs, medians (min-max)")
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
