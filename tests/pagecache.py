"""What a file has in the page cache, for tests of decision 0021 (the source's cache left as found)."""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path

__all__ = ["cached_bytes", "make_cold"]

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
_MAP_FAILED = ctypes.c_void_p(-1).value


def cached_bytes(path: Path) -> int:
    """Bytes of `path` in the page cache: mincore over a mapping that is never touched."""
    size = path.stat().st_size
    if size == 0:
        return 0
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    finally:
        os.close(fd)
    if addr == _MAP_FAILED:
        raise OSError(ctypes.get_errno(), f"mmap {path}")
    try:
        vec = ctypes.create_string_buffer(-(-size // mmap.PAGESIZE))
        if _libc.mincore(addr, size, vec) != 0:
            raise OSError(ctypes.get_errno(), f"mincore {path}")
        return sum(b & 1 for b in vec.raw) * mmap.PAGESIZE
    finally:
        _libc.munmap(addr, size)


def make_cold(path: Path) -> bool:
    """Write `path` out and drop it from the page cache. False where the filesystem keeps it
    cached anyway (tmpfs): a test of cache behaviour cannot run there."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return cached_bytes(path) == 0
