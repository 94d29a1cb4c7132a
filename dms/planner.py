"""Turn a source tree into a stored plan: file and directory shards, and transfer units.

Streaming on purpose: records go to Redis a shard or a unit at a time, so the
planner's memory stays bounded by one shard plus the files of the open unit,
whatever the size of the tree.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
from dataclasses import dataclass

from dms import native
from dms.model import DirRecord, FileRecord, SyncParams, UnitPiece
from dms.state import SHARD, RequestStore
from dms.walk import Skipped, walk_tree

__all__ = ["PlanTotals", "describe_unit", "plan_tree"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanTotals:
    files_total: int
    bytes_total: int
    dirs_total: int
    tasks_total: int
    skipped: int
    files_uptodate: int
    bytes_uptodate: int
    file_shards: int
    dir_shards: int

    def as_fields(self) -> dict[str, int]:
        return dict(self.__dict__)


def is_up_to_date(f: FileRecord, destination: str) -> bool:
    """rsync's quick check: a regular file of the same size and mtime (to the nanosecond),
    and the same mode, is already there. Anything else (missing, another type, a
    different size, time or mode) is copied again. --ignore-times turns this off."""
    try:
        st = os.lstat(os.path.join(destination, f.relpath))
    except OSError:
        return False
    return (
        stat.S_ISREG(st.st_mode)
        and st.st_size == f.size
        and st.st_mtime_ns == f.mtime_ns
        and stat.S_IMODE(st.st_mode) == f.mode
    )


def describe_unit(pieces: list[UnitPiece]) -> str:
    """One line saying what a unit moves, for Flower and logs: a byte range, or a batch of files."""
    from dms.sizes import format_size

    if len(pieces) == 1:
        p = pieces[0]
        return f"{p.file.relpath} [{p.offset}, +{format_size(p.length)})"
    total = sum(p.length for p in pieces)
    return f"{len(pieces)} pieces, {format_size(total)}: {pieces[0].file.relpath} … {pieces[-1].file.relpath}"


def plan_tree(store: RequestStore, params: SyncParams) -> PlanTotals:
    rid = params.request_id
    chunker = native.FileChunker(params.chunk_size, params.unit_bytes, params.unit_max_files)
    files: list[FileRecord] = []
    dirs: list[DirRecord] = []
    pending: dict[int, FileRecord] = {}  # files whose last piece is not in a written unit yet
    counts = {"files": 0, "bytes": 0, "dirs": 0, "units": 0, "skipped": 0, "file_shards": 0, "dir_shards": 0,
              "uptodate": 0, "uptodate_bytes": 0}  # fmt: skip

    def write_units(units: list[list[tuple[int, int, int]]]) -> None:
        for unit in units:
            pieces = [UnitPiece(pending[fid], off, length) for fid, off, length in unit]
            store.write_unit(rid, counts["units"], pieces, describe_unit(pieces))
            counts["units"] += 1
            for p in pieces:
                if p.offset + p.length >= p.file.size:
                    pending.pop(p.file.file_id, None)

    # Across clusters the planner cannot see the destination: every file is sent.
    quick_check = not params.ignore_times and params.source_cluster == params.destination_cluster
    for found in walk_tree(params.source):
        if isinstance(found, FileRecord):
            if quick_check and is_up_to_date(found, params.destination):
                counts["uptodate"] += 1
                counts["uptodate_bytes"] += found.size
                continue
            # file ids number the files to copy, so shards and units stay dense
            entry = dataclasses.replace(found, file_id=counts["files"])
            files.append(entry)
            pending[entry.file_id] = entry
            counts["files"] += 1
            counts["bytes"] += entry.size
            chunker.add(entry.file_id, entry.size)
            write_units(chunker.take_ready())
            if len(files) == SHARD:
                store.write_files(rid, counts["file_shards"], files)
                counts["file_shards"] += 1
                files = []
        elif isinstance(found, DirRecord):
            dirs.append(found)
            counts["dirs"] += 1
            if len(dirs) == SHARD:
                store.write_dirs(rid, counts["dir_shards"], dirs)
                counts["dir_shards"] += 1
                dirs = []
        elif isinstance(found, Skipped):
            counts["skipped"] += 1
            log.warning("request %s: skipped %s: %s", rid, found.relpath, found.reason)
    write_units(chunker.finish())
    if files:
        store.write_files(rid, counts["file_shards"], files)
        counts["file_shards"] += 1
    if dirs:
        store.write_dirs(rid, counts["dir_shards"], dirs)
        counts["dir_shards"] += 1
    return PlanTotals(
        files_total=counts["files"],
        bytes_total=counts["bytes"],
        dirs_total=counts["dirs"],
        tasks_total=counts["units"],
        skipped=counts["skipped"],
        files_uptodate=counts["uptodate"],
        bytes_uptodate=counts["uptodate_bytes"],
        file_shards=counts["file_shards"],
        dir_shards=counts["dir_shards"],
    )
