"""Typed records that cross process boundaries, with their JSON forms.

Records are stored in Redis as compact JSON lists (not dicts) because a large
sync stores millions of them; the field order below is the wire order.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from dms.options import default_of

__all__ = [
    "TERMINAL_STATES",
    "DirRecord",
    "EndReason",
    "FailedPiece",
    "FileRecord",
    "LinkRecord",
    "RecordedPiece",
    "RequestState",
    "SyncParams",
    "UnitPiece",
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


class EndReason(enum.StrEnum):
    """Why a request did not succeed, as a word for scripts: the record's `end_reason`, and
    what the CLI's exit code is chosen by (rsync's codes where rsync has one)."""

    CANCELLED = "cancelled"
    MAX_DELETE = "max_delete"  # --max-delete stopped the deletions
    FILES = "files"  # some files failed
    VANISHED = "vanished"  # every failed file had vanished from the source meanwhile
    PLANNING = "planning"  # the plan failed: a path, the roots, the walk


@dataclass(frozen=True)
class SyncParams:
    """What a user asked for, validated (dms.request.make_params builds it). Stored once per
    request; tasks carry only the id. Defaults come from the option table (dms.options)."""

    request_id: str
    source: str
    destination: str
    parallelism: int = default_of("parallelism")
    chunk_size: int = default_of("chunk_size")
    #: A transfer task closes its unit at this many bytes (default: chunk_size).
    unit_bytes: int = default_of("chunk_size")
    #: ... or at this many pieces, so tiny files are batched, not one task each.
    unit_max_files: int = 1000
    copy_method: str = default_of("copy_method")
    #: --bwlimit: bytes per second for the whole request (0: no limit), shared among its lanes.
    bwlimit: int = default_of("bwlimit")
    #: Flush data to stable storage before publishing (syncfs per batch).
    fsync: bool = default_of("fsync")
    #: Copy every file, even those whose size, mtime and mode already match (rsync -I).
    ignore_times: bool = default_of("ignore_times")
    control_queue: str = default_of("control_queue")
    data_queue: str = default_of("data_queue")
    #: Where finalize runs: the destination's side (its cluster queue); "" = control_queue.
    finalize_queue: str = ""
    #: Cross-cluster requests: the cluster that holds the source, and the one that
    #: receives it. None for a single-node sync (local copier, no data network).
    source_cluster: str | None = None
    destination_cluster: str | None = None
    #: Scheduler policy for this request (None: workers.yml's defaults.scheduler).
    scheduler: str | None = default_of("scheduler")
    #: Compare file contents (XXH3 of both copies) instead of size and mtime (rsync -c).
    checksum: bool = default_of("checksum")
    #: Remove destination entries absent from the source (rsync --delete) ...
    delete: bool = default_of("delete")
    #: ... but at most this many (rsync --max-delete; -1: no limit).
    max_delete: int = default_of("max_delete")
    #: Report what would be copied, updated and deleted; change nothing (rsync -n).
    dry_run: bool = default_of("dry_run")
    #: Record every change in rsync's itemized form (-i), listed at the end (dms.plan.itemize).
    itemize: bool = default_of("itemize")
    #: Copy extended attributes (and with them POSIX ACLs) where both sides support them.
    xattrs: bool = default_of("xattrs")
    #: Recreate fifos, sockets and (as root) devices instead of skipping them (rsync -D).
    specials: bool = default_of("specials")
    #: --include/--exclude rules in order: ("+", pattern) or ("-", pattern).
    filters: tuple[tuple[str, str], ...] = ()
    #: --files-from: only these paths (relative to the source) and the directories on the way.
    #: Not in to_json(): a list may be long, and every task reads the params; RequestStore keeps
    #: it in a key of its own, which the plan and the delete pass read (listed_paths).
    files_from: tuple[str, ...] = field(default=default_of("files_from"), compare=False, repr=False)
    #: how many paths the --files-from list holds (0: no list)
    files_listed: int = 0
    #: Incarnation of the request: submit sets it from the clock (ms), `resume` increments it,
    #: and tasks of an earlier incarnation (a late duplicate, a worker that wakes up, a request
    #: lost with Redis's data and submitted again) recognise they are stale.
    epoch: int = 0

    @property
    def clustered(self) -> bool:
        return self.source_cluster is not None

    @property
    def finalize_target(self) -> str:
        """The queue dms.finalize goes to: the destination's side, else the control queue."""
        return self.finalize_queue or self.control_queue

    def to_json(self) -> str:
        fields = asdict(self)
        del fields["files_from"]
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> SyncParams:
        fields = json.loads(text)
        fields["filters"] = tuple((str(k), str(p)) for k, p in fields.get("filters", ()))
        return cls(**fields)


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
        return [self.file_id, self.relpath, self.size, self.mtime_ns, self.atime_ns, self.mode, self.uid, self.gid,
                [list(x) for x in self.xattrs], int(self.sparse)]  # fmt: skip

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

    @property
    def whole_file(self) -> bool:
        return self.offset == 0 and self.length == self.file.size

    def to_row(self, previous_id: int) -> list[Any]:
        """The piece as a row of a packed manifest (dms.state.packed): its file id as the step
        from the previous piece's, and offset, length, sparse flag and xattrs only when not
        (0, size, false, none), which is every small file: what compresses least is kept
        short (decision 0036)."""
        f = self.file
        row = [f.file_id - previous_id, f.relpath, f.size, f.mtime_ns, f.atime_ns, f.mode, f.uid, f.gid]
        if not self.whole_file or f.sparse or f.xattrs:
            row += [self.offset, self.length, int(f.sparse), [list(x) for x in f.xattrs]]
        return row

    @classmethod
    def from_row(cls, row: list[Any], previous_id: int) -> UnitPiece:
        step, relpath, size, mtime_ns, atime_ns, mode, uid, gid = row[:8]
        offset, length, sparse, xattrs = row[8:] if len(row) > 8 else (0, size, 0, [])
        record = FileRecord(previous_id + step, relpath, size, mtime_ns, atime_ns, mode, uid, gid,
                            tuple((str(n), str(v)) for n, v in xattrs), bool(sparse))  # fmt: skip
        return cls(record, offset, length)


@dataclass(frozen=True)
class RecordedPiece:
    """A piece a transfer moved and verified: its digest, recorded for finalize and resume."""

    file_id: int
    offset: int
    length: int
    digest: str


@dataclass(frozen=True)
class FailedPiece:
    """A piece (or a whole file) that could not be moved or published, and why."""

    file_id: int
    relpath: str
    message: str
    errno: int | None = None
