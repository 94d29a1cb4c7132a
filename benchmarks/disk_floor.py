"""The disk's own limit for a copy: read every source byte and write as many, at once, with O_DIRECT.

    python -m benchmarks.disk_floor SOURCE_DIR SCRATCH_DIR [--streams 8] [--block-mib 32]

Any tool that copies a tree from a cold page cache to durable storage on the same disk must read
all its bytes from the disk and write all of them back; this does only that. `--streams` threads
read disjoint slices of the source files and as many write the same number of bytes into scratch
files, concurrently, each request `--block-mib` long, with O_DIRECT (no page cache, so no memory
for the kernel to find and, on a VM, for the host to back), then fsync. No hashing, no network, no
metadata beyond creating the scratch files. `benchmarks.run` runs it beside the tools on L as the
"disk floor", as iperf3 is the link's limit; the scratch files are removed at the end.
"""

from __future__ import annotations

import argparse
import mmap
import os
import queue
import shutil
import sys
import threading
import time
from pathlib import Path

__all__ = ["floor_copy"]

ALIGN = 4096


def _slices(sizes: list[tuple[Path, int]], block: int) -> list[tuple[Path, int, int]]:
    """(path, offset, length) of every block of every file."""
    return [(path, off, min(block, size - off)) for path, size in sizes for off in range(0, size, block)]


def _stream(jobs: queue.Queue[tuple[Path, int, int] | None], block: int, write: bool,
            errors: list[BaseException]) -> None:  # fmt: skip
    """Read (or write) the queued blocks with O_DIRECT until the queue says stop; a writer fsyncs."""
    buf = mmap.mmap(-1, block)  # page-aligned, as O_DIRECT wants
    if write:
        buf.write(os.urandom(ALIGN) * (block // ALIGN))  # not zeros: no filesystem shortcut for them
    fds: dict[Path, int] = {}
    try:
        while (job := jobs.get()) is not None:
            path, off, length = job
            fd = fds.get(path)
            if fd is None:
                fd = fds[path] = os.open(path, (os.O_WRONLY if write else os.O_RDONLY) | os.O_DIRECT)
            with memoryview(buf)[: -(-length // ALIGN) * ALIGN] as asked:  # a file's last block whole: cut after
                if write:
                    os.pwrite(fd, asked, off)
                elif os.preadv(fd, [asked], off) < length:
                    raise OSError(f"{path}: short read at {off}")
        if write:
            for fd in fds.values():
                os.fsync(fd)
    except BaseException as exc:  # reported by the main thread
        errors.append(exc)
    finally:
        for fd in fds.values():
            os.close(fd)
        buf.close()


def floor_copy(source: Path, scratch: Path, streams: int = 8, block_mib: int = 32) -> tuple[float, int]:
    """Seconds to read every file under `source` and write as many bytes under `scratch`, at once;
    and the bytes read."""
    block = block_mib << 20
    files = sorted((p, p.stat().st_size) for p in source.rglob("*") if p.is_file() and not p.is_symlink())
    scratch.mkdir(parents=True, exist_ok=True)
    targets = []
    for i, (_, size) in enumerate(files):
        target = scratch / f"f{i:06d}"
        with open(target, "wb") as f:
            f.truncate(-(-size // ALIGN) * ALIGN)
        targets.append((target, size))
    reads: queue.Queue[tuple[Path, int, int] | None] = queue.Queue()
    writes: queue.Queue[tuple[Path, int, int] | None] = queue.Queue()
    for job in _slices(files, block):
        reads.put(job)
    for job in _slices(targets, block):
        writes.put(job)
    for _ in range(streams):
        reads.put(None)
        writes.put(None)
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_stream, args=(q, block, write, errors))
               for q, write in ((reads, False), (writes, True)) for _ in range(streams)]  # fmt: skip
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    for target, size in targets:
        os.truncate(target, size)
    if errors:
        raise errors[0]
    return seconds, sum(size for _, size in files)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("scratch", type=Path)
    ap.add_argument("--streams", type=int, default=8, help="reading threads, and as many writing")
    ap.add_argument("--block-mib", type=int, default=32, help="bytes per request")
    args = ap.parse_args(argv)
    try:
        seconds, nbytes = floor_copy(args.source, args.scratch, args.streams, args.block_mib)
    finally:
        shutil.rmtree(args.scratch, ignore_errors=True)
    print(f"{seconds:.3f} s {nbytes} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
