"""Build source trees that exercise the chunking edge cases, and compare trees exactly."""

from __future__ import annotations

import filecmp
import os
import random
import stat
from pathlib import Path

MIB = 1024 * 1024


def write_unique(path: Path, size: int, seed: int) -> None:
    """Incompressible bytes where every 64 KiB block differs (an offset bug cannot hide)."""
    rng = random.Random(seed)
    block = rng.randbytes(64 * 1024)
    with open(path, "wb") as f:
        written = 0
        index = 0
        while written < size:
            n = min(len(block), size - written)
            f.write((index.to_bytes(8, "little") + block[8:])[:n])
            written += n
            index += 1


def build_edge_tree(root: Path, chunk_size: int, small_files: int = 2000, seed: int = 7) -> None:
    """Nested dirs, empty files and dirs, chunk-size edges, a many-chunk file, many small
    files, names with spaces and non-ASCII characters, varied modes and ns mtimes."""
    rng = random.Random(seed)
    (root / "empty dir" / "nested empty").mkdir(parents=True)
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "données é ü 日本").mkdir()
    write_unique(root / "exact chunk", chunk_size, 1)
    write_unique(root / "a" / "chunk plus one", chunk_size + 1, 2)
    write_unique(root / "a" / "b" / "many chunks.bin", chunk_size * 5 + 12345, 3)
    write_unique(root / "données é ü 日本" / "fichier ñ.txt", 777, 4)
    (root / "zero").touch()
    (root / "a" / "b" / "c" / "zero too").touch()
    for i in range(small_files):
        d = root / "small" / f"d{i % 20:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f {i}.dat").write_bytes(rng.randbytes(rng.randrange(0, 9000)))
    modes = [0o600, 0o640, 0o644, 0o755, 0o700]
    for i, (dirpath, _dirnames, filenames) in enumerate(os.walk(root)):
        for j, name in enumerate(filenames):
            p = os.path.join(dirpath, name)
            os.chmod(p, modes[(i + j) % len(modes)])
            os.utime(p, ns=(1_600_000_000_123_456_789 + j, 1_500_000_000_987_654_321 + i * 1000 + j))
    for i, (dirpath, _, _) in enumerate(sorted(os.walk(root), key=lambda w: -w[0].count("/"))):
        os.chmod(dirpath, 0o755 if i % 2 else 0o750)
        os.utime(dirpath, ns=(1_400_000_000_000_000_001, 1_400_000_000_000_000_000 + i))


def make_tree(root: Path, files: int, big_files: int = 0, big_size: int = 0, seed: int = 11) -> None:
    """A plain tree: `files` small files over a few directories, plus `big_files` of `big_size`."""
    rng = random.Random(seed)
    for i in range(files):
        d = root / f"dir{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"file{i}.txt").write_bytes(rng.randbytes(rng.randrange(0, 20000)))
    root.mkdir(parents=True, exist_ok=True)
    for i in range(big_files):
        write_unique(root / f"big{i}.bin", big_size, seed + i)


def snapshot(root: Path) -> dict[str, tuple[str, int, int, int]]:
    """relpath -> (kind, size, mode, mtime_ns) for every entry below root (root is '.')."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        names = [*dirnames, *filenames]
        for name in [".", *names] if dirpath == str(root) else names:
            p = os.path.normpath(os.path.join(dirpath, name))
            st = os.lstat(p)
            kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
            size = st.st_size if kind == "file" else 0
            out[os.path.relpath(p, root)] = (kind, size, stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return out


def assert_same_tree(src: Path, dst: Path, ignore: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    a, b = snapshot(src), snapshot(dst)
    for rel in ignore:
        a.pop(rel, None)
        b.pop(rel, None)
    only_src, only_dst = sorted(set(a) - set(b))[:5], sorted(set(b) - set(a))[:5]
    assert sorted(a) == sorted(b), f"entries differ: only in source {only_src}, only in destination {only_dst}"
    for rel, meta in a.items():
        assert b[rel] == meta, f"{rel}: source {meta} != destination {b[rel]}"
        if meta[0] == "file":
            assert filecmp.cmp(src / rel, dst / rel, shallow=False), f"{rel}: contents differ"
