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
) -> SyncParams:
    """Validated SyncParams from user-facing options (Python API, dms.sync, Flower)."""
    from dms.sizes import parse_size

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
