"""Restart the lanes of a request whose progress stood still: the net under every lost message.

A request's lanes move because each finished unit publishes the next one (dms.route.lanes).
One message lost on the way, for whatever reason, stops its lane for good: a unit popped
just as Redis died, a unit marked sent by a task of an older incarnation, a bug nobody has
found yet. The other repairs each know one cause (a silent node, a gone incarnation, a
stalled claim, a Redis restart). This one knows none: every DMS worker, node or not, looks
every CHECK_EVERY seconds (one worker at a time, deployment-wide) at each transferring
request, and one whose units done, bytes done and running units' counters have not moved
for stall_timeout gets the first unfinished unit of each lane published again, and its
finalize if every unit is done. A duplicate of a unit still queued or running does no harm
(units are idempotent; the first to finish counts), so the cost of a false alarm, a request
merely queued behind others for that long, is one no-op message per lane per stall_timeout.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from celery import bootsteps

from dms.model import RequestState
from dms.route.lanes import restart_lane_heads
from dms.settings import active_config, resolve_endpoints
from dms.state.nodes import Registry
from dms.state.requests import RequestStore, connect

__all__ = ["CHECK_EVERY", "StandStillWatch", "restart_still_requests"]

log = logging.getLogger(__name__)

#: Seconds between two looks, deployment-wide (one worker takes each turn).
CHECK_EVERY = 10.0
#: How many of the newest requests one look covers.
SCAN_REQUESTS = 1000


def restart_still_requests(store: RequestStore, transfer_task: Any, stall_timeout: float) -> int:
    """One look: restart the lanes of every planned, transferring request whose progress
    stood still for `stall_timeout`; how many units were published again."""
    moved = 0
    for info in store.list_requests(limit=SCAN_REQUESTS, states=[RequestState.TRANSFERRING.value]):
        rid = info["request_id"]
        if not info.get("planned"):
            continue  # its planner publishes the lane heads; a lost planner is the plan lease's matter
        still = store.stood_still(rid, stall_timeout)
        if not still:
            continue
        params = store.params(rid)
        before = store.get(rid) or {}
        units = restart_lane_heads(store, transfer_task, params, reason=f"nothing moved for {still} s")
        all_done = int(before.get("tasks_done", 0)) >= int(before.get("tasks_total", 0))
        if before.get("state") == RequestState.TRANSFERRING.value and all_done and before.get("finalize_sent"):
            # every unit is done and finalize was sent, yet the request is still TRANSFERRING
            # (finalize moves it to FINALIZING as it starts): its message was lost
            transfer_task.dispatch_finalize(params)
            store.log_event(rid, "finalize re-dispatched", reason=f"nothing moved for {still} s")
        log.warning("request %s: nothing moved for %d s; %d unit(s) published again", rid, still, units)
        moved += units
    return moved


class StandStillWatch(bootsteps.StartStopStep):  # type: ignore[misc]
    """A worker bootstep on every DMS worker: the stand-still look on the worker's timer."""

    requires: ClassVar[set[str]] = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        self.tref: Any = None
        self.store: RequestStore | None = None
        self.registry: Registry | None = None
        self.app: Any = None
        self.stall_timeout = 120.0

    def start(self, worker: Any) -> None:
        try:
            self.stall_timeout = active_config().defaults.stall_timeout
            client = connect(resolve_endpoints().state_url)
        except Exception as exc:  # the worker itself reports an unreachable Redis; never stop it here
            log.warning("the stand-still watch is off: %s: %s", type(exc).__name__, exc)
            return
        self.store, self.registry, self.app = RequestStore(client), Registry(client), worker.app
        self.tref = worker.timer.call_repeatedly(CHECK_EVERY, self.look)

    def stop(self, worker: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    def look(self) -> None:
        """One turn, if it is this worker's; never raises (a Redis blip must not kill the loop)."""
        if self.store is None or self.registry is None:
            return
        try:
            if self.registry.take_turn("standstill", CHECK_EVERY * 0.9):
                restart_still_requests(self.store, self.app.tasks["dms.transfer"], self.stall_timeout)
        except Exception as exc:
            log.warning("stand-still look failed: %s: %s", type(exc).__name__, exc)
