"""The named records callers hand to dms.native._core (what comes back, ScanEntry, is a
compiled class of _core).

Why records and not tuples: a copy spec has thirteen fields; a positional tuple lets a
caller pass mtime where size goes and nothing notices. The compiled module reads these
by attribute name, so a misnamed field fails loudly. NamedTuples: immutable, cheap.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["CopySpec", "PublishSpec", "VerifySpec"]


class CopySpec(NamedTuple):
    """One piece for UnitCopier or UnitSender: bytes [offset, offset+length) of `src` into
    the staging file `dst`. `check_source`: the source must still have `file_size` and
    `mtime_ns` when the piece ends (else SourceChangedError). With `finish`, the copier reads
    a whole-file piece back, compares it and gives it `mode`, owner (uid -1: left alone)
    and times before its staging file closes (ready for publish_whole_files)."""

    src: str
    dst: str
    offset: int
    length: int
    file_size: int
    mtime_ns: int
    check_source: bool = True
    sparse: bool = False
    finish: bool = False
    mode: int = 0
    uid: int = -1
    gid: int = -1
    atime_ns: int = 0


class VerifySpec(NamedTuple):
    """A staged (or published) range to hash again and compare with `digest` (hex XXH3-128)."""

    path: str
    offset: int
    length: int
    digest: str


class PublishSpec(NamedTuple):
    """A staged whole file to verify, give its metadata and rename to `final`; `verified`
    (the copier finished it) leaves only the rename. uid -1 leaves the owner alone."""

    staged: str
    final: str
    size: int
    digest: str
    mode: int
    uid: int
    gid: int
    atime_ns: int
    mtime_ns: int
    verified: bool = False
