"""Submit a sync request and follow it, from any process that can reach the control Redis.

Progress is read from DMS's own request state, never from Celery results
(CELERY-NOTES 3.6: thousands of AsyncResult subscriptions hurt Redis).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from celery import Celery

from dms.config import DmsConfig
from dms.errors import RequestError
from dms.model import TERMINAL_STATES, RequestState, SyncParams
from dms.paths import validate_pair
from dms.placement import check_roots
from dms.settings import active_config
from dms.state import RequestStore

__all__ = ["cancel", "new_request_id", "submit", "wait"]


def new_request_id() -> str:
    """Sortable and unique enough to type: 20261124-191500-3fa9c1."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def submit(
    app: Celery, store: RequestStore, params: SyncParams, *, check_paths: bool = True, config: DmsConfig | None = None
) -> str:
    """Record the request in Redis and publish its dms.plan task; returns the request id.

    With check_paths, bad paths are refused here with a PathError before
    anything is recorded; the planner checks them again where it runs. A
    cross-cluster request is checked against the clusters' roots of `config`
    (default: the workers.yml named by DMS_CONFIG) with a ConfinementError.
    """
    if not params.request_id or any(c.isspace() or c in "/:*?" for c in params.request_id):
        raise RequestError(f"request id {params.request_id!r}: use letters, digits, '.', '_' or '-'")
    if params.clustered:
        check_roots(config or active_config(), params)  # the paths may not be visible here: check the roots
    elif check_paths:
        validate_pair(params.source, params.destination)
    store.create(params)
    store.log_event(params.request_id, "submitted", source=params.source, destination=params.destination)
    try:
        app.send_task("dms.plan", args=(params.request_id,), queue=params.control_queue)
    except Exception as exc:
        store.set_state(params.request_id, RequestState.FAILED, error=f"could not publish dms.plan: {exc}")
        raise
    return params.request_id


def wait(
    store: RequestStore,
    request_id: str,
    *,
    poll: float = 0.2,
    timeout: float | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    alive: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Poll the request until it ends; returns its final record.

    `alive` is called on every poll and may raise to abandon the wait (the
    embedded mode uses it to notice that its worker died).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        info = store.get(request_id)
        if info is None:
            raise RequestError(f"no such request: {request_id!r}")
        if on_progress:
            on_progress(info)
        if RequestState(info["state"]) in TERMINAL_STATES:
            return info
        if alive:
            alive()
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"request {request_id} still {info['state']} after {timeout} s")
        time.sleep(poll)


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
    return None
