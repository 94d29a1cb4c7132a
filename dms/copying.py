"""Move one transfer unit with the native core, in bounded slices, checking for cancel:
locally (UnitCopier) or to a remote receiver (UnitSender).

No Celery here: the transfer task calls copy_unit() and records what it returns.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from dms import native
from dms.beneath import Beneath
from dms.model import SyncParams, UnitPiece
from dms.paths import staging_path
from dms.state import FailedPiece, RecordedPiece

__all__ = ["SLICE_BYTES", "SlicedWorker", "UnitResult", "copy_unit", "drive", "piece_spec", "send_unit"]

#: At most this much I/O per call into C++; between slices the task checks cancel.
SLICE_BYTES = 64 * 1024 * 1024


@dataclass
class UnitResult:
    ok: list[RecordedPiece] = field(default_factory=list)
    failed: list[FailedPiece] = field(default_factory=list)
    cancelled: bool = False
    bytes_moved: int = 0
    #: each failed piece with its exception, for callers that retry some kinds of failure
    failed_pieces: list[tuple[UnitPiece, BaseException | None]] = field(default_factory=list)


class SlicedWorker(Protocol):
    """What native.UnitCopier and native.UnitSender have in common."""

    @property
    def done(self) -> bool: ...
    @property
    def bytes_moved(self) -> int: ...
    def step(self, max_bytes: int = ...) -> list[tuple[int, str | None, BaseException | None]]: ...


Spec = tuple[str, str, int, int, int, int, bool, bool]


def copy_unit(
    params: SyncParams,
    pieces: Sequence[UnitPiece],
    cancelled: Callable[[], bool] = lambda: False,
    slice_bytes: int = SLICE_BYTES,
    progress: Callable[[int], None] = lambda moved: None,
) -> UnitResult:
    """Copy every piece of a unit on this node (the local transport)."""
    result = UnitResult()
    specs: list[Spec] = []
    runnable: list[UnitPiece] = []
    with Beneath(params.destination) as beneath:  # never write through a symlink swapped in below the root
        for piece in pieces:
            try:
                parent = beneath.dir_path(os.path.dirname(piece.file.relpath))
            except OSError as exc:
                result.failed.append(FailedPiece(piece.file.file_id, piece.file.relpath, str(exc), exc.errno))
                continue
            specs.append(piece_spec(params, piece, parent))
            runnable.append(piece)
        drive(native.UnitCopier(specs, params.copy_method), runnable, result, cancelled, slice_bytes, progress)
        result.failed = [beneath.readable(f) for f in result.failed]
        return result


def send_unit(
    params: SyncParams,
    pieces: Sequence[UnitPiece],
    make_sender: Callable[[list[Spec]], SlicedWorker],
    cancelled: Callable[[], bool] = lambda: False,
    slice_bytes: int = SLICE_BYTES,
    progress: Callable[[int], None] = lambda moved: None,
) -> UnitResult:
    """Send every piece of a unit to a remote receiver (the TCP transport).

    The receiver creates the directories. A failure of the connection itself
    raises (OSError, ProtocolError, AuthenticationError): the caller decides
    whether to retry the unit over another path.
    """
    specs = [piece_spec(params, p) for p in pieces]
    return drive(make_sender(specs), list(pieces), UnitResult(), cancelled, slice_bytes, progress)


def piece_spec(params: SyncParams, piece: UnitPiece, parent: str | None = None) -> Spec:
    """The native copier's spec of a piece; `parent` is where its staging file goes
    (a Beneath path locally; the plain path when a receiver confines it remotely)."""
    f = piece.file
    final = os.path.join(params.destination, f.relpath)
    if parent is not None:
        final = os.path.join(parent, os.path.basename(f.relpath))
    src = os.path.join(params.source, f.relpath)
    return (src, staging_path(final, params.request_id), piece.offset, piece.length, f.size, f.mtime_ns, True, f.sparse)


def drive(
    worker: SlicedWorker,
    runnable: Sequence[UnitPiece],
    result: UnitResult,
    cancelled: Callable[[], bool],
    slice_bytes: int,
    progress: Callable[[int], None],
) -> UnitResult:
    """Step a native worker to the end; between slices, report bytes moved and honour cancel."""
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
        if cancelled():
            result.cancelled = True
            break
    result.bytes_moved += worker.bytes_moved
    return result
