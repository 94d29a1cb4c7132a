"""Local copy methods of the native core beside `cp -a`, on the same files, in one run.

    python benchmarks/copy_method.py [--files 4] [--size-mib 256] [--runs 3] [--dir /tmp/dms-bench-cm]

Before every run: remove the destinations, `sync`, drop the page cache (when root).
Prints the median, min and max per method and the ratio to `cp -a`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dms import native

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import drop_caches, report


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
    report(times, args.files * args.size_mib, "cp -a")


if __name__ == "__main__":
    main()
