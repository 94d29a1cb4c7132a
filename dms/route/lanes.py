"""The lane rule: a request of parallelism P runs P lanes; unit k starts once unit k - P is done.

Why lanes: one request never has more than P units queued or running, so a small request
submitted behind a large one is not stuck behind the large one's whole backlog, and a
lost message stalls one lane, which the janitor can see and restart. Whoever sees a unit's
lane predecessor done publishes it: the planner while it walks, the transfer that finishes
the predecessor, the janitor repairing a stalled lane. Duplicates are harmless (units are
idempotent; a unit is marked dispatched once published).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dms.state.requests import RequestStore

__all__ = ["REPAIR_MAX_UNITS", "Lanes", "repair_lanes", "restart_lane_heads"]

#: Lanes of requests with more units than this are not repaired (one GETBIT per unit).
REPAIR_MAX_UNITS = 200_000


@dataclass(frozen=True)
class Lanes:
    """The lanes of one request: `width` is its parallelism."""

    width: int

    def may_start(self, index: int, done: Callable[[int], object]) -> bool:
        """Unit `index` may run: it heads its lane, or its predecessor is done."""
        return index < self.width or bool(done(index - self.width))

    def successor(self, index: int) -> int:
        """The unit that may start once `index` is done."""
        return index + self.width

    def heads(self, total: int) -> range:
        """The first unit of each lane."""
        return range(min(self.width, total))

    def stalled(self, done: Sequence[int], sent: Sequence[int]) -> list[int]:
        """Units that may start but were never published (a node died between recording a
        unit and publishing its successor)."""
        return [k for k in range(len(done)) if not sent[k] and self.may_start(k, lambda j: done[j])]

    def first_unfinished(self, done: Sequence[int]) -> list[int]:
        """The first unit of each lane that is not done, for lanes that still have one."""
        heads = (next((k for k in range(lane, len(done), self.width) if not done[k]), None)
                 for lane in self.heads(len(done)))  # fmt: skip
        return [k for k in heads if k is not None]


def repair_lanes(store: RequestStore, transfer_task: Any, params: Any) -> int:
    """A node that died between recording a unit and publishing the next one of its lane
    leaves that lane stalled with nothing in flight: publish every unit whose lane
    predecessor is done but which was never published, and finalize if all is done."""
    return _republish(store, transfer_task, params, lambda lanes, done, sent: lanes.stalled(done, sent),
                      reason="its lane had stalled", only_planned=True)  # fmt: skip


def restart_lane_heads(store: RequestStore, transfer_task: Any, params: Any, reason: str) -> int:
    """Publish again the first unfinished unit of every lane of a request, and its finalize
    if every unit is done. For when queued messages may have been lost with the broker: a
    message a worker had popped but not yet recorded as unacknowledged when Redis died
    (kombu moves it in two steps) is gone, and its lane would wait forever. A duplicate of a
    unit that is still queued or running does no harm: units are idempotent, and a done
    unit only advances its lane once."""
    return _republish(store, transfer_task, params, lambda lanes, done, _sent: lanes.first_unfinished(done),
                      reason=reason, only_planned=False)  # fmt: skip


def _republish(
    store: RequestStore,
    transfer_task: Any,
    params: Any,
    choose: Callable[[Lanes, list[int], list[int]], list[int]],
    reason: str,
    only_planned: bool,
) -> int:
    """Publish the units `choose` picks from the lane bits, log each, and finalize a planned
    request whose units are all done; a cancelled request is finalized instead (its lanes
    are not restarted: a unit still running stops at its next slice). How many units."""
    info = store.get(params.request_id) or {}
    total = int(info.get("tasks_total", 0))
    if store.is_cancelled(params.request_id):
        if info.get("planned") and not info.get("finalize_sent"):
            transfer_task.dispatch_finalize(params)
        return 0
    if (only_planned and not info.get("planned")) or total > REPAIR_MAX_UNITS:
        return 0
    done, sent = store.lane_bits(params.request_id, total)
    units = choose(Lanes(params.parallelism), done, sent)
    for k in units:
        transfer_task.dispatch_unit(params, k)
        store.log_event(params.request_id, "unit re-dispatched", unit=k, reason=reason)
    if info.get("planned") and all(done) and not info.get("finalize_sent"):
        transfer_task.dispatch_finalize(params)
    return len(units)
