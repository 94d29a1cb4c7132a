"""The benchmark datasets: deterministic, incompressible, generated once and reused.

L = 4 x 1 GiB; M = 2,000 x 1 MiB in nested directories; S = 50,000 x 4 KiB, 100 per
directory. `scale` shrinks the file count (M, S) or the file size (L) for a quick run.

Content: every 1 MiB block of every file is a slice of one 64 MiB pool of SHAKE-128
output, taken at an offset derived from (dataset, file, block), with the file and
block numbers stamped into its first 16 bytes. No compressor finds anything to
squeeze, no two blocks are equal, and generating 6 GiB costs a memcpy per byte, not a
PRNG call (Python's PRNG makes about 130 MiB/s here).
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Dataset", "datasets", "generate", "verify"]

MIB = 1024 * 1024
GIB = 1024 * MIB
_POOL = hashlib.shake_128(b"dms benchmark pool").digest(64 * MIB)


@dataclass(frozen=True)
class Dataset:
    name: str
    files: int
    size: int
    per_dir: int
    nested: bool = False  # M: two directory levels

    @property
    def total_bytes(self) -> int:
        return self.files * self.size

    def relpath(self, i: int) -> str:
        if self.nested:
            return f"d{i // 200:03d}/e{(i // 20) % 10}/f{i:06d}.bin"
        if self.per_dir >= self.files:
            return f"f{i:06d}.bin"
        return f"d{i // self.per_dir:05d}/f{i:06d}.bin"

    def describe(self) -> str:
        size = f"{self.size / GIB:g} GiB" if self.size >= GIB else f"{self.size / MIB:g} MiB" if self.size >= MIB \
            else f"{self.size / 1024:g} KiB"  # fmt: skip
        return f"{self.files:,} x {size}"


def datasets(scale: float = 1.0) -> dict[str, Dataset]:
    """L, M and S at `scale` (1.0 = the issue's sizes)."""
    return {
        "L": Dataset("L", 4, max(MIB, int(GIB * scale) // MIB * MIB), per_dir=4),
        "M": Dataset("M", max(20, int(2000 * scale)), MIB, per_dir=20, nested=True),
        "S": Dataset("S", max(200, int(50_000 * scale)), 4096, per_dir=100),
    }


def _content(ds: Dataset, i: int) -> Iterator[bytes]:
    """The bytes of file i, in blocks of at most 1 MiB."""
    rng = random.Random(f"{ds.name}:{i}")
    for block, offset in enumerate(range(0, ds.size, MIB)):
        n = min(MIB, ds.size - offset)
        start = rng.randrange(0, len(_POOL) - n)
        stamp = i.to_bytes(8, "little") + block.to_bytes(8, "little")
        yield (stamp + _POOL[start + 16 : start + n])[:n]


def generate(ds: Dataset, root: Path) -> Path:
    """root/<name>, made once (a marker records what was made), then reused."""
    where = root / ds.name
    marker = root / f".{ds.name}.complete"
    if marker.exists() and marker.read_text() == repr(ds):
        return where
    if where.exists():
        import shutil

        shutil.rmtree(where)
    for i in range(ds.files):
        path = where / ds.relpath(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            for block in _content(ds, i):
                f.write(block)
    os.sync()
    marker.write_text(repr(ds))
    return where


def verify(ds: Dataset, src: Path, dst: Path, samples: int = 20) -> None:
    """A result counts only if the destination has every file, every byte, and sampled
    content (start, middle and end of each sampled file) equal to the source's."""
    count = total = 0
    for _dirpath, _dirs, names in os.walk(dst):
        for name in names:
            count += 1
            total += os.lstat(os.path.join(_dirpath, name)).st_size
    if count != ds.files or total != ds.total_bytes:
        raise AssertionError(f"{dst}: {count} files, {total} bytes; expected {ds.files} files, {ds.total_bytes} bytes")
    for i in random.Random(7).sample(range(ds.files), min(samples, ds.files)):
        rel = ds.relpath(i)
        with open(src / rel, "rb") as a, open(dst / rel, "rb") as b:
            for offset in sorted({0, ds.size // 2, max(0, ds.size - MIB)}):
                a.seek(offset)
                b.seek(offset)
                if a.read(MIB) != b.read(MIB):
                    raise AssertionError(f"{dst / rel}: content differs at byte {offset}")
