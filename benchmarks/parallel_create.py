"""The kernel's cost of creating S's files with 1 or 4 processes, no DMS involved (decision 0016).

    sudo .venv/bin/python -m benchmarks.parallel_create [--dir /work/benchwork/mk] [--runs 2]

Each process makes 100-file directories the way a DMS transfer does (a staging name, 4 KiB
written, renamed); before each run the tree is removed, `sync` runs and the page cache is
dropped, as benchmarks.run does. Three layouts of 50,000 files in 500 directories:
one process making its directories as it goes; 4 processes, each making its own; the
directories made first, in order, by one process, then 4 processes. Prints the kernel (system)
CPU seconds of each run, which is what differs: wall time on a shared VM is noise.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
from multiprocessing import Process
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import drop_caches  # noqa: E402

DIRS, FILES = 500, 100


def create(root: Path, processes: int, index: int) -> None:
    """Files of every `processes`-th directory from `index`, each staged then renamed."""
    for d in range(index, DIRS, processes):
        directory = root / f"d{d:05d}"
        directory.mkdir(exist_ok=True)
        for f in range(FILES):
            staged = directory / f".f{f:06d}.dms-bench.partial"
            fd = os.open(staged, os.O_WRONLY | os.O_CREAT, 0o600)
            os.pwrite(fd, b"x" * 4096, 0)
            os.close(fd)
            os.rename(staged, directory / f"f{f:06d}")


def system_seconds(root: Path, processes: int, dirs_first: bool) -> float:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    drop_caches()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime + resource.getrusage(resource.RUSAGE_SELF).ru_stime
    if dirs_first:
        for d in range(DIRS):
            (root / f"d{d:05d}").mkdir()
    workers = [Process(target=create, args=(root, processes, i)) for i in range(processes)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime + resource.getrusage(resource.RUSAGE_SELF).ru_stime
    return after - before


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp/dms-bench-create"))
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    cases = [("1 process, directories as it goes", 1, False), ("4 processes, directories as they go", 4, False),
             ("directories first, then 4 processes", 4, True)]  # fmt: skip
    try:
        for label, processes, dirs_first in cases:
            runs = [system_seconds(args.dir, processes, dirs_first) for _ in range(args.runs)]
            print(f"{label:38s} kernel CPU s: " + ", ".join(f"{r:.2f}" for r in runs))
    finally:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
