"""Submit a sync request and follow it, from any process that can reach the control Redis.

Progress is read from DMS's own request state, never from Celery results
(decision 0023, F3: thousands of AsyncResult subscriptions hurt Redis).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from dms.config import DmsConfig
from dms.errors import RequestError, RequestExists
from dms.fs.paths import validate_pair
from dms.model import TERMINAL_STATES, RequestState, SyncParams
from dms.request import check_request_id
from dms.state.messages import TaskSender
from dms.state.requests import RequestStore

__all__ = ["SETTLE_GRACE_SECONDS", "cancel", "check_request_paths", "resume", "submit", "wait"]

#: finalize writes the terminal state, settles the request (plan dropped, NIC load given back,
#: retention set), then marks it `settled` and announces the end. A waiter that reads the
#: terminal state in between waits for the mark, but not longer than this after the end (a
#: finalize that died there, or a record from before the mark existed).
SETTLE_GRACE_SECONDS = 10.0


def check_request_paths(params: SyncParams, config: DmsConfig | None = None) -> None:
    """What the submitting host can check of a request's paths, before anything starts: both
    paths on the file system for a single-node sync (dms.fs.paths.validate_pair), the clusters'
    roots of `config` (default: the workers.yml named by DMS_CONFIG) across clusters, whose
    paths may not be visible here. Raises PathError or ConfinementError."""
    if params.clustered:  # imported here: a local sync's client never loads the cluster registry
        from dms.fs.roots import check_roots
        from dms.settings import active_config

        check_roots(config or active_config(), params)
    else:
        validate_pair(params.source, params.destination)


def submit(
    app: TaskSender,
    store: RequestStore,
    params: SyncParams,
    *,
    check_paths: bool = True,
    config: DmsConfig | None = None,
) -> str:
    """Record the request in Redis and publish its dms.plan task; returns the request id.

    `app` publishes: the Celery app, or the lighter dms.state.messages.KombuSender.

    With check_paths, bad paths are refused here with a PathError before
    anything is recorded; the planner checks them again where it runs. A
    cross-cluster request is checked against the clusters' roots of `config`
    (default: the workers.yml named by DMS_CONFIG) with a ConfinementError.
    """
    check_request_id(params.request_id)
    if check_paths or params.clustered:
        check_request_paths(params, config)
    if params.epoch == 0:
        # A first incarnation is numbered by the clock, not 0: if Redis loses the request and it
        # is submitted again under its id, tasks of the lost incarnation still running find a
        # different epoch and record nothing into the new one (resume adds 1 as before).
        params = dataclasses.replace(params, epoch=time.time_ns() // 1_000_000)
    try:
        store.create(params)
    except RequestExists:
        old = store.get(params.request_id) or {}
        old_params = store.params(params.request_id)
        same_tree = (old_params.source, old_params.destination) == (params.source, params.destination)
        if old.get("state") in (RequestState.FAILED.value, RequestState.CANCELLED.value) and same_tree:
            return resume(app, store, params.request_id, params=params)  # "re-submitting resumes"
        raise
    store.log_event(params.request_id, "submitted", source=params.source, destination=params.destination)
    _publish_plan(app, store, params)
    return params.request_id


def resume(
    app: TaskSender, store: RequestStore, request_id: str, *, force: bool = False, params: SyncParams | None = None
) -> str:
    """Run an interrupted, failed or cancelled request again, moving only what is missing.

    Files already published at the destination are skipped by the quick check;
    files a previous run left partly staged keep their staged chunks (their digests
    were recorded) and only the missing chunks move; finalize re-verifies every
    chunk before publishing. A request that is not ended (its workers died) needs
    `force`: the new incarnation (epoch) makes any late task of the old one a no-op.
    `params` may change options (not the paths); default: the request's own.
    """
    info = store.get(request_id)
    if info is None:
        raise RequestError(f"no such request: {request_id!r} (unknown, or expired)")
    state = RequestState(info["state"])
    if state is RequestState.SUCCEEDED:
        raise RequestError(f"request {request_id} SUCCEEDED: nothing to resume (submit a new sync)")
    if state not in TERMINAL_STATES and not force:
        raise RequestError(f"request {request_id} is still {state.value}; if its workers are gone, "
                           f"resume it with --force")  # fmt: skip
    old = store.params(request_id)
    base = params or old
    new = dataclasses.replace(base, request_id=request_id, epoch=old.epoch + 1)
    carried = store.save_carry(request_id, int(info.get("file_shards", 0)))  # from a run that never finalized
    if old.clustered and state not in TERMINAL_STATES:  # forced: units routed by the old run hold NIC load
        from dms.state.nodes import Registry  # here: a submitting client never loads the registry

        Registry.sharing(store).release_all(request_id)  # before reset_for_resume drops their routes
    store.reset_for_resume(request_id, new)
    store.log_event(request_id, "resumed", epoch=new.epoch, previous_state=state.value, carried_files=carried)
    _publish_plan(app, store, new)
    return request_id


def _publish_plan(app: TaskSender, store: RequestStore, params: SyncParams) -> None:
    try:
        app.send_task("dms.plan", args=(params.request_id, params.epoch), queue=params.control_queue)
    except Exception as exc:
        store.set_state(params.request_id, RequestState.FAILED, error=f"could not publish dms.plan: {exc}")
        raise


def wait(
    store: RequestStore,
    request_id: str,
    *,
    poll: float = 0.2,
    timeout: float | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    alive: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Follow the request until it ends; returns its final record.

    The request's end is published on its Keys.ended channel once the request is settled
    (RequestStore.set_state, or finalize's announce_end), and this sleeps on that
    subscription: a short request (a no-change re-sync takes well under a second) is seen
    ending at once, not at the next poll. A terminal state read before the request is
    settled is not yet the end (SETTLE_GRACE_SECONDS). The state is still read every `poll`
    seconds, for `on_progress` and as the authority if the subscription is lost (a Redis
    restart).
    `alive` is called on every poll and may raise to abandon the wait (the
    embedded mode uses it to notice that its worker died).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = False
    with store.end_signal(request_id) as ended:
        while True:
            info = store.get(request_id)
            if info is None and seen:
                raise RequestError(
                    f"request {request_id!r} vanished from Redis while it ran: Redis lost its data (restarted "
                    "without persistence, or flushed; docs/operations.md, 'Redis'). Nothing partial was "
                    f"published. Submit the same source and destination again with --id {request_id} to "
                    "finish it: files already published are skipped."
                )
            if info is None:
                raise RequestError(f"no such request: {request_id!r}")
            seen = True
            if on_progress:
                on_progress(info)
            if RequestState(info["state"]) in TERMINAL_STATES:
                if info.get("settled") or time.time() - float(info.get("finished_at") or 0) > SETTLE_GRACE_SECONDS:
                    return info
                ended.sleep(min(poll, 0.05))  # the end is being settled; its announcement wakes this
                continue
            if alive:
                alive()
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"request {request_id} still {info['state']} after {timeout} s")
            ended.sleep(poll)


def cancel(store: RequestStore, request_id: str) -> str | None:
    """Ask a request to stop (cooperative: see docs/operations.md, "Cancel").

    Returns None when the cancel was recorded, or the state of a request that
    had already ended (nothing to do). Raises RequestError for an unknown id.
    """
    state = store.state(request_id)
    if state is None:
        raise RequestError(f"no such request: {request_id!r} (unknown, or expired)")
    if state in TERMINAL_STATES:
        return state.value
    store.request_cancel(request_id)
    store.log_event(request_id, "cancel requested")
    if store.cancel_unstarted(request_id):  # no plan run works on it: nothing else would end it
        store.log_event(request_id, "ended", state=RequestState.CANCELLED.value, error="cancelled by request",
                        published=0, uptodate=0, failed=0, deleted=0)  # fmt: skip
    return None
