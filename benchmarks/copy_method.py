"""Local copy methods of the native core beside `cp -a`, on the same files, in one run.

    python benchmarks/copy_method.py [--files 4] [--size-mib 256] [--runs 3] [--dir /tmp/dms-bench-cm]

Before every run: remove the destinations, `sync`, drop the page cache (when root).
Prints the median, min and max per method and the ratio to `cp -a`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from dms import native


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    if os.geteuid() == 0:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


def copy_with(method: str, sources: list[Path], out: Path) -> None:
    for i, src in enumerate(sources):
        dst = out / f"dst{i}"
        if method == "cp -a":
            subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
            continue
        size, offset = src.stat().st_size, 0
        while offset < size:
            n = min(64 << 20, size - offset)
            native.copy_range(src, dst, offset, n, method=method)
            offset += n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/dms-bench-cm"))
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    sources = []
    for i in range(args.files):
        src = args.dir / f"src{i}"
        if not src.exists() or src.stat().st_size != args.size_mib << 20:
            with open(src, "wb") as f:
                for _ in range(args.size_mib):
                    f.write(os.urandom(1 << 20))
        sources.append(src)
    methods = ["readwrite", "copy_file_range", "cp -a"]
    times: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(args.runs):
        for method in methods:  # alternate, so drift hits every method alike
            out = args.dir / "out"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            drop_caches()
            t = time.perf_counter()
            copy_with(method, sources, out)
            times[method].append(time.perf_counter() - t)
    total_mib = args.files * args.size_mib
    cp = statistics.median(times["cp -a"])
    for method, values in times.items():
        med = statistics.median(values)
        print(f"{method:16s} median {med:.2f} s (min {min(values):.2f}, max {max(values):.2f})  "
              f"{total_mib / med:.0f} MiB/s  {cp / med:.2f} x cp -a")  # fmt: skip


if __name__ == "__main__":
    main()
