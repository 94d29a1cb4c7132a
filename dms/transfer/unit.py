"""Move one transfer unit with the native core, in bounded slices, checking for cancel:
locally (UnitCopier) or to a remote receiver (UnitSender).

Locally, a file the unit holds whole (one piece from byte 0 to its end) is also
verified and published here, as finalize would, so that work is spread over the
transfer tasks instead of finalize's one serial loop (decision 0014).

No Celery here: the transfer task calls copy_unit() and records what it returns.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from dms import native
from dms.errors import IntegrityError
from dms.fs.beneath import Beneath, destination_beneath, rename_replacing
from dms.fs.names import shown
from dms.fs.paths import staging_path
from dms.model import FailedPiece, RecordedPiece, SyncParams, UnitPiece
from dms.native import CopySpec, PublishSpec

__all__ = [
    "SLICE_BYTES",
    "SlicedWorker",
    "UnitResult",
    "copy_unit",
    "drive",
    "piece_spec",
    "publish_whole_files",
    "publishable",
    "send_resending",
    "send_unit",
]

log = logging.getLogger(__name__)

#: At most this much I/O per call into C++; between slices the task checks cancel.
SLICE_BYTES = native.DEFAULT_SLICE_BYTES
#: The smallest slice of a paced unit (--bwlimit): below it, calls cost more than bytes.
PACED_SLICE_MIN = 64 * 1024


@dataclass
class UnitResult:
    ok: list[RecordedPiece] = field(default_factory=list)
    failed: list[FailedPiece] = field(default_factory=list)
    cancelled: bool = False
    bytes_moved: int = 0
    #: each failed piece with its exception, for callers that retry some kinds of failure
    failed_pieces: list[tuple[UnitPiece, BaseException | None]] = field(default_factory=list)
    #: file ids verified and renamed into place by this unit (copy_unit with may_publish)
    published: list[int] = field(default_factory=list)


class SlicedWorker(Protocol):
    """What native.UnitCopier and native.UnitSender have in common."""

    @property
    def done(self) -> bool: ...
    @property
    def bytes_moved(self) -> int: ...
    def step(self, max_bytes: int = ...) -> list[tuple[int, str | None, BaseException | None]]: ...


def copy_unit(
    params: SyncParams,
    pieces: Sequence[UnitPiece],
    cancelled: Callable[[], bool] = lambda: False,
    slice_bytes: int = SLICE_BYTES,
    progress: Callable[[int], None] = lambda moved: None,
    may_publish: Callable[[], bool] = lambda: False,
    rate: float = 0.0,
) -> UnitResult:
    """Copy every piece of a unit on this node (the local transport); then, if
    `may_publish()` still says so (not cancelled, not stale), publish its whole files."""
    result = UnitResult()
    specs: list[CopySpec] = []
    runnable: list[UnitPiece] = []
    chown = os.geteuid() == 0
    # never write through a symlink swapped in below the root, nor read through one
    with destination_beneath(params) as beneath, Beneath(params.source) as source:
        for piece in pieces:
            try:
                parent = beneath.dir_path(os.path.dirname(piece.file.relpath))
                source_dir = source.dir_path(os.path.dirname(piece.file.relpath), create=False)
            except OSError as exc:
                result.failed.append(FailedPiece(piece.file.file_id, piece.file.relpath, str(exc), exc.errno))
                continue
            spec = piece_spec(params, piece, parent, source_dir)
            if publishable(params, piece):  # the copier verifies it and sets its metadata
                f = piece.file
                spec = spec._replace(finish=True, mode=f.mode, uid=f.uid if chown and f.uid >= 0 else -1, gid=f.gid,
                                     atime_ns=f.atime_ns)  # fmt: skip
            specs.append(spec)
            runnable.append(piece)
        drive(native.UnitCopier(specs, params.copy_method), runnable, result, cancelled, slice_bytes, progress, rate)
        if not result.cancelled and result.ok and may_publish():
            publish_whole_files(params, runnable, specs, result)
        result.failed = [source.readable(beneath.readable(f)) for f in result.failed]
        return result


def publishable(params: SyncParams, piece: UnitPiece) -> bool:
    """Whether the transfer may publish this piece's file: the piece is the whole file, and it
    has no xattrs to copy (finalize's order, owner then xattrs then mode, keeps an owner
    change from clearing them)."""
    return piece.whole_file and not (params.xattrs and piece.file.xattrs)


def publish_whole_files(params: SyncParams, runnable: Sequence[UnitPiece], specs: Sequence[CopySpec],
                        result: UnitResult) -> None:  # fmt: skip
    """Publish each file this unit copied whole, as finalize would. The copier already read
    the staged bytes back against the source's digest and set owner, mode and times on them
    (spec `finish`); here one syncfs (unless --no-fsync), then the renames. A file that
    fails is removed from `result.ok` and failed, with its staging file removed (resume
    copies it again)."""
    piece_of = {(p.file.file_id, p.offset): (p, spec) for p, spec in zip(runnable, specs, strict=True)}
    publish: list[PublishSpec] = []
    owners: list[int] = []  # publish entry -> index into result.ok
    for i, rec in enumerate(result.ok):
        piece, spec = piece_of[(rec.file_id, rec.offset)]
        if not publishable(params, piece):
            continue  # not finished by the copier: finalize publishes it
        f = piece.file
        final = os.path.join(os.path.dirname(spec.dst), os.path.basename(f.relpath))
        publish.append(PublishSpec(spec.dst, final, f.size, rec.digest, f.mode, -1, -1, f.atime_ns, f.mtime_ns,
                                   verified=True))  # fmt: skip
        owners.append(i)
    if not publish:
        return
    try:
        outcomes = native.publish_whole_files(publish, params.destination if params.fsync else None)
    except OSError as exc:  # the syncfs failed: nothing was renamed; finalize will try again
        log.warning("request %s: flushing %s failed (%s); finalize publishes these files", params.request_id,
                    params.destination, exc)  # fmt: skip
        return
    dropped: set[int] = set()
    for index, digest, error in outcomes:
        rec = result.ok[owners[index]]
        if isinstance(error, OSError) and error.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
            try:  # a directory stands at the final name: the source's file replaces it, as in rsync
                rename_replacing(
                    publish[index].staged,
                    publish[index].final,
                    params.delete,
                    shown(piece_of[(rec.file_id, rec.offset)][0].file.relpath),
                )
                digest = rec.digest
            except OSError as exc:
                error = exc
        if digest is not None:
            result.published.append(rec.file_id)
            continue
        dropped.add(owners[index])
        piece = piece_of[(rec.file_id, rec.offset)][0]
        what = "verification failed" if not isinstance(error, OSError) else "publish failed"
        code = error.errno if isinstance(error, OSError) else None
        result.failed.append(FailedPiece(rec.file_id, piece.file.relpath, f"{what}: {error}", code))
        result.failed_pieces.append((piece, error))
        with contextlib.suppress(OSError):
            os.unlink(publish[index].staged)
    if dropped:
        result.ok = [rec for i, rec in enumerate(result.ok) if i not in dropped]


def send_unit(
    params: SyncParams,
    pieces: Sequence[UnitPiece],
    make_sender: Callable[[list[CopySpec]], SlicedWorker],
    cancelled: Callable[[], bool] = lambda: False,
    slice_bytes: int = SLICE_BYTES,
    progress: Callable[[int], None] = lambda moved: None,
    rate: float = 0.0,
) -> UnitResult:
    """Send every piece of a unit to a remote receiver (the TCP transport).

    The receiver creates the directories. A failure of the connection itself
    raises (OSError, ProtocolError, AuthenticationError): the caller decides
    whether to retry the unit over another path.
    """
    with Beneath(params.source) as source:  # read through the source's directories as opened, never a symlink
        result = UnitResult()
        specs: list[CopySpec] = []
        runnable: list[UnitPiece] = []
        for p in pieces:
            try:
                source_dir = source.dir_path(os.path.dirname(p.file.relpath), create=False)
            except OSError as exc:
                result.failed.append(FailedPiece(p.file.file_id, p.file.relpath, str(exc), exc.errno))
                continue
            specs.append(piece_spec(params, p, source_dir=source_dir))
            runnable.append(p)
        if not specs:
            return result
        result = drive(make_sender(specs), runnable, result, cancelled, slice_bytes, progress, rate)
        result.failed = [source.readable(f) for f in result.failed]
        return result


def send_resending(
    params: SyncParams,
    pieces: Sequence[UnitPiece],
    make_sender: Callable[[list[CopySpec]], SlicedWorker],
    retries: int,
    on_resend: Callable[[int, int], None],
    cancelled: Callable[[], bool] = lambda: False,
    slice_bytes: int = SLICE_BYTES,
    progress: Callable[[int], None] = lambda moved: None,
    rate: float = 0.0,
) -> UnitResult:
    """send_unit, then send again (up to `retries` times) the pieces the receiver's checksum
    rejected: they were corrupted in flight, and the source still holds the right bytes.
    `on_resend(pieces, attempt)` is called before each attempt (make_sender sees it)."""
    result = send_unit(params, pieces, make_sender, cancelled, slice_bytes, progress, rate)
    for attempt in range(1, retries + 1):
        again = [p for p, error in result.failed_pieces if isinstance(error, IntegrityError)]
        if result.cancelled or not again:
            break
        on_resend(len(again), attempt)
        retried = {(p.file.file_id, p.offset) for p in again}
        keep = [i for i, (p, _) in enumerate(result.failed_pieces) if (p.file.file_id, p.offset) not in retried]
        result.failed = [result.failed[i] for i in keep]  # send_unit keeps the two lists in step
        result.failed_pieces = [result.failed_pieces[i] for i in keep]
        retry = send_unit(params, again, make_sender, cancelled, slice_bytes, progress, rate)
        result.ok += retry.ok
        result.failed += retry.failed
        result.failed_pieces += retry.failed_pieces
        result.bytes_moved += retry.bytes_moved
        result.cancelled = retry.cancelled
    return result


def piece_spec(
    params: SyncParams, piece: UnitPiece, parent: str | None = None, source_dir: str | None = None
) -> CopySpec:
    """The native copier's spec of a piece; `parent` is where its staging file goes
    (a Beneath path locally; the plain path when a receiver confines it remotely), and
    `source_dir` the source file's directory as opened (a Beneath path: no symlink is
    followed on the way, and paths longer than PATH_MAX work)."""
    f = piece.file
    final = os.path.join(params.destination, f.relpath)
    if parent is not None:
        final = os.path.join(parent, os.path.basename(f.relpath))
    src = os.path.join(params.source, f.relpath)
    if source_dir is not None:
        src = os.path.join(source_dir, os.path.basename(f.relpath))
    return CopySpec(src, staging_path(final, params.request_id), piece.offset, piece.length, f.size, f.mtime_ns,
                    check_source=True, sparse=f.sparse)  # fmt: skip


def drive(
    worker: SlicedWorker,
    runnable: Sequence[UnitPiece],
    result: UnitResult,
    cancelled: Callable[[], bool],
    slice_bytes: int,
    progress: Callable[[int], None],
    rate: float = 0.0,
) -> UnitResult:
    """Step a native worker to the end; before the first slice and between slices, honour
    cancel (and report bytes moved). With a `rate` (bytes/s, --bwlimit's share of this
    unit), slices are a tenth of a second of it and the next waits until the bytes moved so
    far are due: the pace holds on average, in steps too small to be bursts."""
    if cancelled():
        result.cancelled = True
        return result
    if rate > 0:
        slice_bytes = max(PACED_SLICE_MIN, min(slice_bytes, int(rate / 10)))
    began = time.monotonic()
    while not worker.done:
        for index, digest, error in worker.step(slice_bytes):
            piece = runnable[index]
            if digest is not None:
                result.ok.append(RecordedPiece(piece.file.file_id, piece.offset, piece.length, digest))
            else:
                errno = error.errno if isinstance(error, OSError) else None
                result.failed.append(FailedPiece(piece.file.file_id, piece.file.relpath, str(error), errno))
                result.failed_pieces.append((piece, error))
        if worker.done:
            break
        progress(worker.bytes_moved)
        if cancelled() or (rate > 0 and not _paced(began + worker.bytes_moved / rate, cancelled)):
            result.cancelled = True
            break
    result.bytes_moved += worker.bytes_moved
    return result


def _paced(due: float, cancelled: Callable[[], bool]) -> bool:
    """Wait until `due` (time.monotonic()), looking at cancel every second; False if cancelled."""
    while (now := time.monotonic()) < due:
        time.sleep(min(1.0, due - now))
        if time.monotonic() < due and cancelled():
            return False
    return True
