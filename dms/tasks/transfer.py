"""dms.transfer: copy one unit (a batch of chunks or small files) into staging files.

Idempotent: pieces are pwrite()s at fixed offsets of a staging file and their
digests are recorded first-write-wins, so running a unit twice writes the same
bytes and counts once. Per-file errors are recorded, never raised, so the
request always reaches finalize.
"""

from __future__ import annotations

from typing import Any

from dms.application import app
from dms.copying import copy_unit
from dms.model import TERMINAL_STATES
from dms.state import FailedPiece
from dms.tasks.base import DmsTask

__all__ = ["TransferTask", "transfer"]


class TransferTask(DmsTask):
    abstract = True

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """An unexpected exception fails the unit's files, not the whole request,
        and still counts the unit, so finalize runs and names what failed."""
        request_id, index = args[0], args[1]
        try:
            params = self.store.params(request_id)
            pieces = self.store.load_unit(request_id, index)
            message = f"transfer task failed: {type(exc).__name__}: {exc}"
            failed = [FailedPiece(p.file.file_id, p.file.relpath, message) for p in pieces]
            progress = self.store.record_unit(request_id, index, [], failed)
            self.advance(params, index, progress)
        except Exception:
            super().on_failure(exc, task_id, args, kwargs, einfo)


@app.task(name="dms.transfer", bind=True, base=TransferTask, ignore_result=True)  # type: ignore[untyped-decorator]
def transfer(self: TransferTask, request_id: str, unit_index: int) -> dict[str, Any]:
    store = self.store
    state = store.state(request_id)
    if state is None or state in TERMINAL_STATES:  # a late duplicate: never recreate staging files
        return {"request_id": request_id, "unit": unit_index, "status": "stale"}
    params = store.params(request_id)
    pieces = store.load_unit(request_id, unit_index)
    cancelled = store.is_cancelled(request_id)
    if cancelled:
        progress = store.record_unit(request_id, unit_index, [], [])
        self.advance(params, unit_index, progress)
        return {"request_id": request_id, "unit": unit_index, "status": "cancelled"}
    result = copy_unit(
        params,
        pieces,
        cancelled=lambda: store.is_cancelled(request_id),
        progress=lambda moved: store.report_inflight(request_id, unit_index, moved),
    )
    progress = store.record_unit(request_id, unit_index, result.ok, result.failed)
    if progress.first:
        store.log_event(request_id, "unit done", unit=unit_index, pieces=len(result.ok), failed=len(result.failed),
                        bytes=result.bytes_moved, worker=self.request.hostname)  # fmt: skip
    self.advance(params, unit_index, progress)
    return {
        "request_id": request_id,
        "unit": unit_index,
        "status": "cancelled" if result.cancelled else "done",
        "pieces_ok": len(result.ok),
        "pieces_failed": len(result.failed),
        "bytes": result.bytes_moved,
    }
