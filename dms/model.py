"""Typed records that cross process boundaries, with their JSON forms.

Records are stored in Redis as compact JSON lists (not dicts) because a large
sync stores millions of them; the field order below is the wire order.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "TERMINAL_STATES",
    "DirRecord",
    "FileRecord",
    "RequestState",
    "SyncParams",
    "UnitPiece",
    "make_params",
]


class RequestState(enum.StrEnum):
    PENDING = "PENDING"
    PLANNING = "PLANNING"
    TRANSFERRING = "TRANSFERRING"
    FINALIZING = "FINALIZING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TERMINAL_STATES = frozenset({RequestState.SUCCEEDED, RequestState.FAILED, RequestState.CANCELLED})


@dataclass(frozen=True)
class SyncParams:
    """What a user asked for. Stored once per request; tasks carry only the id."""

    request_id: str
    source: str
    destination: str
    parallelism: int = 4
    chunk_size: int = 64 * 1024 * 1024
    #: A transfer task closes its unit at this many bytes (default: chunk_size).
    unit_bytes: int = 64 * 1024 * 1024
    #: ... or at this many pieces, so tiny files are batched, not one task each.
    unit_max_files: int = 1000
    copy_method: str = "copy_file_range"
    #: Flush data to stable storage before publishing (syncfs per batch).
    fsync: bool = True
    #: Copy every file, even those whose size, mtime and mode already match (rsync -I).
    ignore_times: bool = False
    control_queue: str = "dms.control"
    data_queue: str = "dms.data"
    #: Where finalize runs: the destination's side (its cluster queue), or control_queue.
    finalize_queue: str = "dms.control"
    #: Cross-cluster requests: the cluster that holds the source, and the one that
    #: receives it. None for a single-node sync (local copier, no data network).
    source_cluster: str | None = None
    destination_cluster: str | None = None
    #: Scheduler policy for this request (None: workers.yml's defaults.scheduler).
    scheduler: str | None = None

    @property
    def clustered(self) -> bool:
        return self.source_cluster is not None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> SyncParams:
        return cls(**json.loads(text))


def make_params(
    source: str,
    destination: str,
    *,
    request_id: str,
    parallelism: int = 4,
    chunk_size: int | str = 64 * 1024 * 1024,
    copy_method: str = "copy_file_range",
    fsync: bool = True,
    ignore_times: bool = False,
    control_queue: str = "dms.control",
    data_queue: str = "dms.data",
    source_cluster: str | None = None,
    destination_cluster: str | None = None,
    direction: str | None = None,
    scheduler: str | None = None,
) -> SyncParams:
    """Validated SyncParams from user-facing options (Python API, dms.sync, Flower).

    `direction="A_TO_B"` (the reference design's spelling) is the same as
    source_cluster="A", destination_cluster="B".
    """
    from dms.routing import cluster_queue
    from dms.sizes import parse_size

    if direction is not None:
        src, sep, dst = str(direction).partition("_TO_")
        if not sep or not src or not dst:
            raise ValueError(f"direction must look like A_TO_B, got {direction!r}")
        if (source_cluster or src) != src or (destination_cluster or dst) != dst:
            raise ValueError(f"direction {direction!r} contradicts source/destination cluster")
        source_cluster, destination_cluster = src, dst
    if (source_cluster is None) != (destination_cluster is None):
        raise ValueError("give both the source and the destination cluster (--from A --to B), or neither")
    finalize_queue = control_queue
    if source_cluster is not None and destination_cluster is not None:
        control_queue = cluster_queue(source_cluster)
        finalize_queue = cluster_queue(destination_cluster)
        data_queue = ""
    chunk = parse_size(chunk_size)
    if not isinstance(parallelism, int) or parallelism < 1:
        raise ValueError(f"parallelism must be a positive integer, got {parallelism!r}")
    if chunk < 1:
        raise ValueError(f"chunk_size must be at least 1 byte, got {chunk_size!r}")
    if copy_method not in ("copy_file_range", "readwrite"):
        raise ValueError(f"copy_method must be 'copy_file_range' or 'readwrite', got {copy_method!r}")
    return SyncParams(
        request_id=request_id,
        source=source,
        destination=destination,
        parallelism=parallelism,
        chunk_size=chunk,
        unit_bytes=chunk,
        copy_method=copy_method,
        fsync=bool(fsync),
        ignore_times=bool(ignore_times),
        control_queue=control_queue,
        data_queue=data_queue,
        finalize_queue=finalize_queue,
        source_cluster=source_cluster,
        destination_cluster=destination_cluster,
        scheduler=scheduler,
    )


@dataclass(frozen=True)
class FileRecord:
    """A regular file as the planner saw it; `file_id` is its position in walk order."""

    file_id: int
    relpath: str
    size: int
    mtime_ns: int
    atime_ns: int
    mode: int

    def to_wire(self) -> list[Any]:
        return [self.file_id, self.relpath, self.size, self.mtime_ns, self.atime_ns, self.mode]

    @classmethod
    def from_wire(cls, row: list[Any]) -> FileRecord:
        return cls(*row)


@dataclass(frozen=True)
class DirRecord:
    relpath: str  # "" is the root of the tree
    mtime_ns: int
    atime_ns: int
    mode: int

    def to_wire(self) -> list[Any]:
        return [self.relpath, self.mtime_ns, self.atime_ns, self.mode]

    @classmethod
    def from_wire(cls, row: list[Any]) -> DirRecord:
        return cls(*row)


@dataclass(frozen=True)
class UnitPiece:
    """One byte range of one file inside a transfer unit (the file record is inlined)."""

    file: FileRecord
    offset: int
    length: int

    def to_wire(self) -> list[Any]:
        return [*self.file.to_wire(), self.offset, self.length]

    @classmethod
    def from_wire(cls, row: list[Any]) -> UnitPiece:
        return cls(FileRecord.from_wire(row[:6]), row[6], row[7])
