"""Copy one transfer unit with the native core, in bounded slices, checking for cancel.

No Celery here: the transfer task calls copy_unit() and records what it returns.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dms import native
from dms.model import SyncParams, UnitPiece
from dms.paths import staging_path
from dms.state import FailedPiece, RecordedPiece

__all__ = ["SLICE_BYTES", "UnitResult", "copy_unit"]

#: At most this much I/O per call into C++; between slices the task checks cancel.
SLICE_BYTES = 64 * 1024 * 1024


@dataclass
class UnitResult:
    ok: list[RecordedPiece] = field(default_factory=list)
    failed: list[FailedPiece] = field(default_factory=list)
    cancelled: bool = False
    bytes_moved: int = 0


def copy_unit(
    params: SyncParams,
    pieces: Sequence[UnitPiece],
    cancelled: Callable[[], bool] = lambda: False,
    slice_bytes: int = SLICE_BYTES,
    progress: Callable[[int], None] = lambda moved: None,
) -> UnitResult:
    """Copy every piece of a unit; between native slices, report bytes moved and honour cancel."""
    result = UnitResult()
    specs = []
    made_dirs: set[str] = set()
    runnable: list[UnitPiece] = []
    for piece in pieces:
        final = os.path.join(params.destination, piece.file.relpath)
        parent = os.path.dirname(final)
        if parent not in made_dirs:
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as exc:
                result.failed.append(FailedPiece(piece.file.file_id, piece.file.relpath, str(exc), exc.errno))
                continue
            made_dirs.add(parent)
        src = os.path.join(params.source, piece.file.relpath)
        f = piece.file
        specs.append(
            (src, staging_path(final, params.request_id), piece.offset, piece.length, f.size, f.mtime_ns, True)
        )
        runnable.append(piece)
    copier = native.UnitCopier(specs, params.copy_method)
    while not copier.done:
        for index, digest, error in copier.step(slice_bytes):
            piece = runnable[index]
            if digest is not None:
                result.ok.append(RecordedPiece(piece.file.file_id, piece.offset, piece.length, digest))
            else:
                errno = error.errno if isinstance(error, OSError) else None
                result.failed.append(FailedPiece(piece.file.file_id, piece.file.relpath, str(error), errno))
        if copier.done:
            break
        progress(copier.bytes_moved)
        if cancelled():
            result.cancelled = True
            break
    result.bytes_moved = copier.bytes_moved
    return result
