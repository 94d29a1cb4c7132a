"""Scan a source tree into FileRecord and DirRecord streams, in a stable order.

The order is deterministic (sorted names, depth-first), so planning the same
tree twice gives the same file ids. Symlinks and special files are reported
as skipped entries for now (docs/architecture.md, "What is not copied yet").
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from dms.model import DirRecord, FileRecord
from dms.paths import is_staging_name

__all__ = ["Skipped", "WalkEntry", "walk_tree"]


@dataclass(frozen=True)
class Skipped:
    relpath: str
    reason: str


WalkEntry = FileRecord | DirRecord | Skipped


def walk_tree(root: str) -> Iterator[WalkEntry]:
    """Yield the root DirRecord, then every entry below it; file ids count from 0."""
    st = os.stat(root)
    yield DirRecord("", st.st_mtime_ns, st.st_atime_ns, stat.S_IMODE(st.st_mode))
    next_id = 0
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        abs_dir = os.path.join(root, rel_dir) if rel_dir else root
        try:
            with os.scandir(abs_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield Skipped(rel_dir or ".", f"cannot list directory: {exc.strerror}")
            continue
        subdirs = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                est = entry.stat(follow_symlinks=False)
            except OSError as exc:
                yield Skipped(rel, f"cannot stat: {exc.strerror}")
                continue
            mode = est.st_mode
            if stat.S_ISREG(mode):
                if is_staging_name(entry.name):
                    continue  # another DMS request's staging file, never data
                yield FileRecord(next_id, rel, est.st_size, est.st_mtime_ns, est.st_atime_ns, stat.S_IMODE(mode))
                next_id += 1
            elif stat.S_ISDIR(mode):
                yield DirRecord(rel, est.st_mtime_ns, est.st_atime_ns, stat.S_IMODE(mode))
                subdirs.append(rel)
            elif stat.S_ISLNK(mode):
                yield Skipped(rel, "symbolic link (not copied yet)")
            else:
                yield Skipped(rel, "special file (fifo, socket or device) skipped")
        stack.extend(reversed(subdirs))
