"""Re-dispatch the work of nodes that went silent (CELERY-NOTES 4.6: no stranded queues).

Every node worker runs a sweep on its heartbeat timer; a Redis lock lets one
sweep run at a time across the deployment. A node is dead when it is in
`dms:nodes` but its heartbeat key has expired (SIGKILL, a crash, SIGSTOP, a
network cut). For every running cross-cluster request, each unit routed to
or from a dead node that is not done yet is routed again among live nodes
and published again. The old message (queued on the dead node's NIC queue,
or unacked there) is left alone: if the node comes back, the transfer sees
the unit is done and does nothing; transfers are idempotent anyway.

Bound on recovery: heartbeat_ttl (default 10 s) + one heartbeat interval
(2 s), then the unit's own duration.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from dms.model import TERMINAL_STATES, RequestState
from dms.placement import NoRoute
from dms.registry import NODES, Registry
from dms.state import Keys, RequestStore

__all__ = ["restart_lane_heads", "sweep"]

log = logging.getLogger(__name__)

LOCK = "dms:janitor:lock"
DEAD_SINCE = "dms:janitor:dead_since:"
#: A silent node is swept for this long, then forgotten until it sends a heartbeat again.
FORGET_AFTER = 300.0
#: A PENDING request whose plan message is in no queue for this long was taken by a dead worker.
PENDING_GRACE = 10.0
#: Lanes of requests with more units than this are not repaired (one GETBIT per unit).
REPAIR_MAX_UNITS = 200_000
#: How many of the newest requests a sweep looks at when some node is dead.
SCAN_REQUESTS = 1000


def sweep(store: RequestStore, registry: Registry, transfer_task: Any) -> int:
    """One pass; returns how many units were re-dispatched. Never raises."""
    try:
        if not store.r.set(LOCK, "1", nx=True, px=5000):
            return 0  # another node is sweeping
    except Exception:
        return 0
    try:
        live = {n.node for n in registry.live_nodes(fresh=True)}
        transfer_task.registry.live_nodes(fresh=True)  # the placement must not route to the dead either
        if live:  # a node that beats again starts afresh: should it fall silent again later,
            # it is swept for FORGET_AFTER from then, not forgotten at once for its old silence
            store.r.delete(*[f"{DEAD_SINCE}{node}" for node in live])
        dead = set(store.r.smembers(NODES)) - live
        if not dead:
            return 0
        moved = 0
        for info in store.list_requests(limit=SCAN_REQUESTS):
            if RequestState(info["state"]) in TERMINAL_STATES:
                continue
            moved += _sweep_request(store, registry, transfer_task, info["request_id"], dead)
        now = time.time()
        for node in dead:
            since = float(store.r.get(f"{DEAD_SINCE}{node}") or 0)
            if not since:
                store.r.set(f"{DEAD_SINCE}{node}", now, ex=3600)
                log.warning("node %s is silent (no heartbeat): its units go to live nodes", node)
            elif now - since > FORGET_AFTER:
                # Keep sweeping for a while (a unit routed with a stale view of the live
                # nodes is caught), then stop looking until the node beats again.
                store.r.srem(NODES, node)
                store.r.delete(f"{DEAD_SINCE}{node}")
        if moved:
            log.warning("janitor: %d unit(s) of silent node(s) %s routed again", moved, ", ".join(sorted(dead)))
        return moved
    except Exception:  # the sweep must never take the worker's event loop down
        log.exception("janitor sweep failed")
        return 0
    finally:
        store.r.delete(LOCK)


def _plan_was_taken(store: RequestStore, rid: str, params: Any, info: dict[str, Any]) -> bool:
    if time.time() - float(info.get("created_at") or time.time()) < PENDING_GRACE:
        return False
    queued = store.r.lrange(params.control_queue, 0, 9999)
    return not any(rid in message for message in queued)


def _node_of(worker: str | None) -> str:
    """Worker names are "<node>@<host>" (dms-worker sets -n so)."""
    return (worker or "").partition("@")[0]


def _sweep_request(store: RequestStore, registry: Registry, transfer_task: Any, rid: str, dead: set[str]) -> int:
    params = store.params(rid)
    if not params.clustered:
        return 0
    info = store.get(rid) or {}
    keys = Keys(rid)
    state = info.get("state")
    planner_dead = _node_of(info.get("planner")) in dead
    taken = not info.get("planner") and _plan_was_taken(store, rid, params, info)
    if state == RequestState.PENDING.value and (taken or planner_dead):
        # its dms.plan message was taken (it is in no queue) but nobody started it: it was
        # reserved by a worker that died with its node; or the planner died after naming
        # itself and before the request moved to PLANNING (a window of a few ms)
        store.r.hset(keys.req, "planner", "janitor")
        transfer_task.app.send_task("dms.plan", args=(rid, params.epoch), queue=params.control_queue)
        store.log_event(rid, "plan re-dispatched", reason="its message was held by a silent node")
    if state == RequestState.PLANNING.value and _node_of(info.get("planner")) in dead:
        # the planner died with its node: plan again (deterministic, so the same units)
        store.r.hset(keys.req, "planner", "janitor")
        transfer_task.app.send_task("dms.plan", args=(rid, params.epoch), queue=params.control_queue)
        store.log_event(rid, "plan re-dispatched", reason=f"node {_node_of(info.get('planner'))} silent")
    if state == RequestState.FINALIZING.value and _node_of(info.get("finalizer")) in dead:
        store.r.hset(keys.req, "finalizer", "janitor")
        store.release_finalize_lock(rid)
        transfer_task.app.send_task("dms.finalize", args=(rid, params.epoch),
                                    queue=params.finalize_queue or params.control_queue)  # fmt: skip
        store.log_event(rid, "finalize re-dispatched", reason=f"node {_node_of(info.get('finalizer'))} silent")
    moved = 0
    for unit in [int(u) for u in store.r.hkeys(f"dms:req:{rid}:routes")]:
        route = registry.route_of(rid, unit)
        if route is None:
            continue
        src, dst, nbytes = route
        silent = {key.partition("/")[0] for key in (src, dst) if key} & dead
        if not silent:
            continue
        if store.unit_done(rid, unit):
            registry.release(rid, [unit])
            continue
        try:
            new = transfer_task.placement.route(params, unit, nbytes, exclude={dst} if dst else ())
        except NoRoute as exc:
            log.warning("request %s unit %d: %s", rid, unit, exc)
            continue
        transfer_task.dispatch_unit(params, unit, new)
        store.log_event(rid, "unit re-dispatched", unit=unit, previous=f"{src} -> {dst or 'local'}",
                        reason=f"node {', '.join(sorted(silent))} silent")  # fmt: skip
        moved += 1
    return moved + _repair_lanes(store, transfer_task, params)


def _repair_lanes(store: RequestStore, transfer_task: Any, params: Any) -> int:
    """A node that died between recording a unit and publishing the next one of its lane
    leaves that lane stalled with nothing in flight: publish every unit whose lane
    predecessor is done but which was never published, and finalize if all is done."""
    info = store.get(params.request_id) or {}
    total = int(info.get("tasks_total", 0))
    if not info.get("planned") or total > REPAIR_MAX_UNITS:
        return 0
    done, sent = store.lane_bits(params.request_id, total)
    p = params.parallelism
    started = 0
    for k in range(total):
        if not sent[k] and (k < p or done[k - p]):
            transfer_task.dispatch_unit(params, k)
            store.log_event(params.request_id, "unit re-dispatched", unit=k, reason="its lane had stalled")
            started += 1
    if all(done) and not info.get("finalize_sent"):
        transfer_task.dispatch_finalize(params)
    return started


def restart_lane_heads(store: RequestStore, transfer_task: Any, params: Any, reason: str) -> int:
    """Publish again the first unfinished unit of every lane of a request, and its finalize
    if every unit is done. For when queued messages may have been lost with the broker: a
    message a worker had popped but not yet recorded as unacknowledged when Redis died
    (kombu moves it in two steps) is gone, and its lane would wait forever. A duplicate of a
    unit that is still queued or running does no harm: units are idempotent, and a done
    unit only advances its lane once."""
    info = store.get(params.request_id) or {}
    total = int(info.get("tasks_total", 0))
    if total > REPAIR_MAX_UNITS:
        return 0
    done, _sent = store.lane_bits(params.request_id, total)
    started = 0
    for lane in range(min(params.parallelism, total)):
        head = next((k for k in range(lane, total, params.parallelism) if not done[k]), None)
        if head is not None:
            transfer_task.dispatch_unit(params, head)
            store.log_event(params.request_id, "unit re-dispatched", unit=head, reason=reason)
            started += 1
    if info.get("planned") and all(done) and not info.get("finalize_sent"):
        transfer_task.dispatch_finalize(params)
    return started
