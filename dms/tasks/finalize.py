"""dms.finalize: verify and publish, set the final state, then run the caller's chain."""

from __future__ import annotations

import errno
from typing import Any

from dms.chains import next_in_chain
from dms.finalize import strays
from dms.finalize.publish import PublishReport, publish_request
from dms.fs.beneath import destination_beneath
from dms.model import TERMINAL_STATES, EndReason, RequestState, SyncParams
from dms.request import summarize
from dms.state.requests import RETENTION_SECONDS, RequestStore
from dms.tasks.base import DmsTask
from dms.worker import incarnation
from dms.worker.app import app

__all__ = ["RETENTION_SECONDS", "finalize"]

_LOCK_TTL = 3600


@app.task(name="dms.finalize", bind=True, base=DmsTask, track_started=True)  # type: ignore[untyped-decorator]
def finalize(self: DmsTask, request_id: str, epoch: int = 0) -> dict[str, Any]:
    store = self.store
    info = store.get(request_id)
    if info is None:
        return {"request_id": request_id, "state": None, "error": "unknown or expired request"}
    if int(info.get("params", {}).get("epoch", 0)) != epoch:  # an earlier incarnation's finalize
        return summarize(request_id, info)
    if RequestState(info["state"]) not in TERMINAL_STATES:
        if not store.acquire_finalize_lock(request_id, self.request.id or "?", _LOCK_TTL):
            return summarize(request_id, info)  # another finalize of this request is running
        store.name_owner(request_id, "finalizer", self.request.hostname, incarnation.current())  # for the janitor
        try:
            params = store.params(request_id)
            store.set_state(request_id, RequestState.FINALIZING)
            store.log_event(request_id, "finalizing", worker=self.request.hostname)
            if params.clustered:
                _prepare_destination(params)
            report = publish_request(
                store, params, info["file_shards"], info["dir_shards"], lambda: store.is_cancelled(request_id),
                link_shards=info.get("link_shards", 0), name_shards=info.get("name_shards", 0),
            )  # fmt: skip
            info = store.get(request_id) or info
            # The end is announced to waiters only once the request is settled (its plan dropped,
            # its NIC load given back, its retention set): `dms-submit sync --wait` returns then.
            state, error, reason = _final_state(store, params, report, info)
            fields = {"error": error, "end_reason": reason} if error else {}
            store.set_state(request_id, state, announce=False, **fields)
            info = store.get(request_id) or info  # the ended record: logged, then summarized
            if info["state"] == RequestState.FAILED.value:
                store.save_carry(request_id, info["file_shards"])  # what `resume` can skip
            else:  # after the end state: a losing copy that stops later has dms.tidy remove its strays
                _remove_strays(store, params, store.take_strays(request_id))
            store.log_event(request_id, "ended", state=info["state"], error=info.get("error"),
                            published=info["files_done"], uptodate=info.get("files_uptodate", 0),
                            failed=info["files_failed"], deleted=report.deleted)  # fmt: skip
            store.drop_plan(request_id, info["tasks_total"], info["file_shards"], info["dir_shards"],
                            info.get("link_shards", 0), info.get("name_shards", 0))  # fmt: skip
            if params.clustered:
                self.registry.release_all(request_id)  # units that never finished give their NIC load back
            store.set_retention(request_id, RETENTION_SECONDS, info["file_shards"])
            store.announce_end(request_id, RequestState(info["state"]))
        finally:
            store.release_finalize_lock(request_id)
    summary = summarize(request_id, info)
    chain = store.pop_chain(request_id)
    if chain:  # the caller's chain, kept out of the transfer messages by dms.plan
        nxt = next_in_chain(chain, self.app)  # on its own app's broker and queue (dms.chains)
        nxt.apply_async((summary,), chain=chain or None)
    return summary


@app.task(name="dms.tidy", bind=True, base=DmsTask, ignore_result=True)  # type: ignore[untyped-decorator]
def tidy(self: DmsTask, request_id: str, blob: str) -> dict[str, Any]:
    """Remove the stray staging files a losing copy of a unit described (dms.finalize.strays)
    after its request ended: run on the destination's side (the request's finalize queue)."""
    state = self.store.state(request_id)
    if state not in (RequestState.SUCCEEDED, RequestState.CANCELLED):
        return {"request_id": request_id, "removed": 0}  # gone (retention), or FAILED: resume wants them
    return {"request_id": request_id, "removed": _remove_strays(self.store, self.store.params(request_id), [blob])}


def _remove_strays(store: RequestStore, params: SyncParams, blobs: list[str]) -> int:
    if not blobs:
        return 0
    removed = strays.remove(params, blobs)
    if removed:
        store.log_event(params.request_id, "strays removed", files=removed)
    return removed


def _final_state(
    store: RequestStore, params: SyncParams, report: PublishReport, info: dict[str, Any]
) -> tuple[RequestState, str | None, str | None]:
    """How the request ends, why if not SUCCEEDED, and that reason as a word for scripts
    (EndReason; the CLI's exit code): cancelled, over --max-delete, files failed."""
    if report.cancelled or store.is_cancelled(params.request_id):
        return RequestState.CANCELLED, "cancelled by request", EndReason.CANCELLED
    if report.delete_limited:
        more = report.delete_limited
        entries = f"entr{'y' if more == 1 else 'ies'}"
        limited = f"--max-delete {params.max_delete} reached: {more} more destination {entries} not deleted"
        return RequestState.FAILED, limited, EndReason.MAX_DELETE
    if info["files_failed"]:
        errors = store.errors(params.request_id, limit=CAUSE_WINDOW)
        cause = _cause(errors)
        detail = f"; first: {cause['path']}: {cause['error']}" if cause else ""
        total = int(info["files_total"]) + int(info.get("links_total") or 0)  # a failed link counts as a file
        counted = f"{info['files_failed']} of {total} file(s) failed{detail}"
        if cause and "AuthenticationError" in cause["error"]:  # the one fault an operator must fix first
            return (
                RequestState.FAILED,
                f"the data-plane handshake was refused (secrets differ); {counted}",
                EndReason.FILES,
            )
        vanished = len(errors) == info["files_failed"] and all(e.get("errno") == errno.ENOENT for e in errors)
        return RequestState.FAILED, counted, EndReason.VANISHED if vanished else EndReason.FILES
    if info.get("listed_missing"):  # the errors name them
        first = (store.errors(params.request_id, limit=CAUSE_WINDOW) or [{}])[-1]
        detail = f"; first: {first['path']}: {first['error']}" if first else ""
        missing = f"{info['listed_missing']} path(s) of the --files-from list are not in the source{detail}"
        return RequestState.FAILED, missing, EndReason.FILES
    return RequestState.SUCCEEDED, None, None


#: How many of the newest errors the summary looks through for the one to name.
CAUSE_WINDOW = 200


def _cause(errors: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The error a summary names: a refused handshake if any (it explains all the rest), else
    the oldest of those looked at. The error list is newest first, and what comes last is
    often a consequence (a hard link whose target failed, recorded at finalize)."""
    for error in errors:
        if "AuthenticationError" in error["error"]:
            return error
    return errors[-1] if errors else None


def _prepare_destination(params: SyncParams) -> None:
    """Finalize runs on the destination's side; it writes only inside this node's roots,
    reached without following a symbolic link (dms.fs.beneath.destination_beneath)."""
    if params.dry_run:
        return
    with destination_beneath(params) as beneath:
        beneath.dir_fd("")  # made where missing, below the root that holds it
