"""Typed records that cross process boundaries, with their JSON forms.

Records are stored in Redis as compact JSON lists (not dicts) because a large
sync stores millions of them; the field order below is the wire order.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "TERMINAL_STATES",
    "DirRecord",
    "FileRecord",
    "LinkRecord",
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
    #: Where finalize runs: the destination's side (its cluster queue); "" = control_queue.
    finalize_queue: str = ""
    #: Cross-cluster requests: the cluster that holds the source, and the one that
    #: receives it. None for a single-node sync (local copier, no data network).
    source_cluster: str | None = None
    destination_cluster: str | None = None
    #: Scheduler policy for this request (None: workers.yml's defaults.scheduler).
    scheduler: str | None = None
    #: Compare file contents (XXH3 of both copies) instead of size and mtime (rsync -c).
    checksum: bool = False
    #: Remove destination entries absent from the source (rsync --delete) ...
    delete: bool = False
    #: ... but at most this many (rsync --max-delete; -1: no limit).
    max_delete: int = -1
    #: Report what would be copied, updated and deleted; change nothing (rsync -n).
    dry_run: bool = False
    #: Copy extended attributes (and with them POSIX ACLs) where both sides support them.
    xattrs: bool = True
    #: Recreate fifos, sockets and (as root) devices instead of skipping them (rsync -D).
    specials: bool = False
    #: --include/--exclude rules in order: ("+", pattern) or ("-", pattern).
    filters: tuple[tuple[str, str], ...] = ()
    #: Incarnation of the request: submit sets it from the clock (ms), `resume` increments it,
    #: and tasks of an earlier incarnation (a late duplicate, a worker that wakes up, a request
    #: lost with Redis's data and submitted again) recognise they are stale.
    epoch: int = 0

    @property
    def clustered(self) -> bool:
        return self.source_cluster is not None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> SyncParams:
        fields = json.loads(text)
        fields["filters"] = tuple((str(k), str(p)) for k, p in fields.get("filters", ()))
        return cls(**fields)


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
    checksum: bool = False,
    delete: bool = False,
    max_delete: int | None = None,
    dry_run: bool = False,
    xattrs: bool = True,
    specials: bool = False,
    filters: Sequence[tuple[str, str]] | Sequence[list[str]] = (),
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> SyncParams:
    """Validated SyncParams from user-facing options (CLI, Python API, dms.sync, Flower).

    The paths are checked as spelled and made absolute here (dms.paths.request_path, a
    PathError): every way into DMS builds its request through this function. What the
    file system says of them is checked where they are visible (dms.paths.validate_pair).

    `direction="A_TO_B"` (the reference design's spelling) is the same as
    source_cluster="A", destination_cluster="B". Filter rules come as `filters`
    (ordered ("+"|"-", pattern) pairs, as the CLI passes them) or, from Python,
    as `include`/`exclude` lists (includes first, then excludes).
    """
    from dms.filters import RuleSet
    from dms.paths import request_path
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
    remote = source_cluster is not None  # the paths are on the clusters' nodes, maybe not visible here
    source = request_path("source", source, remote=remote)
    destination = request_path("destination", destination, remote=remote)
    rules = tuple((str(k), str(p)) for k, p in filters) + tuple(("+", p) for p in include)
    rules += tuple(("-", p) for p in exclude)
    RuleSet(rules)  # refuse a malformed rule here
    if max_delete is not None and (not isinstance(max_delete, int) or max_delete < 0):
        raise ValueError(f"max_delete must be a non-negative integer, got {max_delete!r}")
    finalize_queue = ""
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
        checksum=bool(checksum),
        delete=bool(delete),
        max_delete=-1 if max_delete is None else max_delete,
        dry_run=bool(dry_run),
        xattrs=bool(xattrs),
        specials=bool(specials),
        filters=rules,
    )


#: Extended attributes as (name, base64 value) pairs; ACLs travel as system.posix_acl_* here.
Xattrs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class FileRecord:
    """A regular file as the planner saw it; `file_id` is its position in walk order.

    uid/gid are -1 when unknown; `sparse` says the source has holes (fewer blocks
    than its size), so the copy punches holes for zero blocks (rsync -S)."""

    file_id: int
    relpath: str
    size: int
    mtime_ns: int
    atime_ns: int
    mode: int
    uid: int = -1
    gid: int = -1
    xattrs: Xattrs = ()
    sparse: bool = False

    def to_wire(self) -> list[Any]:
        return [*self.base_wire(), self.uid, self.gid, [list(x) for x in self.xattrs], int(self.sparse)]

    def base_wire(self) -> list[Any]:
        """What a transfer unit needs of the file (metadata stays in the file shards)."""
        return [self.file_id, self.relpath, self.size, self.mtime_ns, self.atime_ns, self.mode]

    @classmethod
    def from_wire(cls, row: list[Any]) -> FileRecord:
        if len(row) <= 6:
            return cls(*row)
        file_id, relpath, size, mtime_ns, atime_ns, mode, uid, gid = row[:8]
        xattrs = tuple((str(n), str(v)) for n, v in row[8])
        return cls(file_id, relpath, size, mtime_ns, atime_ns, mode, uid, gid, xattrs, bool(row[9]))


@dataclass(frozen=True)
class DirRecord:
    relpath: str  # "" is the root of the tree
    mtime_ns: int
    atime_ns: int
    mode: int
    uid: int = -1
    gid: int = -1
    xattrs: Xattrs = ()

    def to_wire(self) -> list[Any]:
        return [self.relpath, self.mtime_ns, self.atime_ns, self.mode, self.uid, self.gid,
                [list(x) for x in self.xattrs]]  # fmt: skip

    @classmethod
    def from_wire(cls, row: list[Any]) -> DirRecord:
        if len(row) <= 4:
            return cls(*row)
        relpath, mtime_ns, atime_ns, mode, uid, gid = row[:6]
        return cls(relpath, mtime_ns, atime_ns, mode, uid, gid, tuple((str(n), str(v)) for n, v in row[6]))


@dataclass(frozen=True)
class LinkRecord:
    """A symbolic link (kind "sym": `target` is its content, never followed), a hard
    link (kind "hard": `target` is the relpath of the first name of the same inode,
    which is copied as a file; this name is linked to it at publish), or a special
    file (kind "special": `target` is "<st_mode>:<st_rdev>", recreated with mknod)."""

    relpath: str
    kind: str
    target: str
    mtime_ns: int = 0
    atime_ns: int = 0
    uid: int = -1
    gid: int = -1

    def to_wire(self) -> list[Any]:
        return [self.relpath, self.kind, self.target, self.mtime_ns, self.atime_ns, self.uid, self.gid]

    @classmethod
    def from_wire(cls, row: list[Any]) -> LinkRecord:
        return cls(*row)


@dataclass(frozen=True)
class UnitPiece:
    """One byte range of one file inside a transfer unit (the file record is inlined)."""

    file: FileRecord
    offset: int
    length: int
    #: the inlined record has the file's owner and xattrs, so the transfer that copies
    #: the whole file may publish it (false for units stored by an older DMS)
    full_record: bool = True

    @property
    def whole_file(self) -> bool:
        return self.offset == 0 and self.length == self.file.size

    def to_wire(self) -> list[Any]:
        f = self.file
        return [*f.base_wire(), self.offset, self.length, int(f.sparse), f.uid, f.gid, [list(x) for x in f.xattrs]]

    @classmethod
    def from_wire(cls, row: list[Any]) -> UnitPiece:
        sparse = bool(row[8]) if len(row) > 8 else False
        file_id, relpath, size, mtime_ns, atime_ns, mode = row[:6]
        if len(row) > 11:
            xattrs = tuple((str(n), str(v)) for n, v in row[11])
            record = FileRecord(file_id, relpath, size, mtime_ns, atime_ns, mode, row[9], row[10], xattrs, sparse)
            return cls(record, row[6], row[7])
        return cls(FileRecord(file_id, relpath, size, mtime_ns, atime_ns, mode, sparse=sparse), row[6], row[7], False)
