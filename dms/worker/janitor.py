"""Re-dispatch the work of nodes that went silent (decision 0023, F7: no stranded queues).

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
from dms.route.lanes import repair_lanes
from dms.route.placement import NoRoute
from dms.state.nodes import Registry
from dms.state.requests import RequestStore

__all__ = ["sweep"]

log = logging.getLogger(__name__)

#: A silent node is swept for this long, then forgotten until it sends a heartbeat again.
FORGET_AFTER = 300.0
#: A PENDING request whose plan message is in no queue for this long was taken by a dead worker.
PENDING_GRACE = 10.0
#: How many of the newest requests a sweep looks at when some node is dead.
SCAN_REQUESTS = 1000


def sweep(store: RequestStore, registry: Registry, transfer_task: Any) -> int:
    """One pass; returns how many units were re-dispatched. Never raises."""
    try:
        if not registry.take_sweep_lock():
            return 0  # another node is sweeping
    except Exception:
        return 0
    try:
        live = {n.node for n in registry.live_nodes(fresh=True)}
        transfer_task.registry.live_nodes(fresh=True)  # the placement must not route to the dead either
        # a node that beats again starts afresh: should it fall silent again later, it is
        # swept for FORGET_AFTER from then, not forgotten at once for its old silence
        registry.clear_silence(sorted(live))
        dead = registry.known_nodes() - live
        if not dead:
            return 0
        moved = 0
        for info in store.list_requests(limit=SCAN_REQUESTS):
            if RequestState(info["state"]) in TERMINAL_STATES:
                continue
            moved += _sweep_request(store, registry, transfer_task, info["request_id"], dead)
        now = time.time()
        for node in dead:
            since = registry.silent_since(node)
            if not since:
                registry.note_silent(node, now)
                log.warning("node %s is silent (no heartbeat): its units go to live nodes", node)
            elif now - since > FORGET_AFTER:
                # Keep sweeping for a while (a unit routed with a stale view of the live
                # nodes is caught), then stop looking until the node beats again.
                registry.forget(node)
        if moved:
            log.warning("janitor: %d unit(s) of silent node(s) %s routed again", moved, ", ".join(sorted(dead)))
        return moved
    except Exception:  # the sweep must never take the worker's event loop down
        log.exception("janitor sweep failed")
        return 0
    finally:
        registry.release_sweep_lock()


def _plan_was_taken(store: RequestStore, rid: str, params: Any, info: dict[str, Any]) -> bool:
    if time.time() - float(info.get("created_at") or time.time()) < PENDING_GRACE:
        return False
    return not any(rid in message for message in store.queued_messages(params.control_queue))


def _node_of(worker: str | None) -> str:
    """Worker names are "<node>@<host>" (dms-worker sets -n so)."""
    return (worker or "").partition("@")[0]


def _sweep_request(store: RequestStore, registry: Registry, transfer_task: Any, rid: str, dead: set[str]) -> int:
    params = store.params(rid)
    if not params.clustered:
        return 0
    info = store.get(rid) or {}
    state = info.get("state")
    planner_dead = _node_of(info.get("planner")) in dead
    taken = not info.get("planner") and _plan_was_taken(store, rid, params, info)
    if state == RequestState.PENDING.value and (taken or planner_dead):
        # its dms.plan message was taken (it is in no queue) but nobody started it: it was
        # reserved by a worker that died with its node; or the planner died after naming
        # itself and before the request moved to PLANNING (a window of a few ms)
        store.name_owner(rid, "planner", "janitor")
        transfer_task.app.send_task("dms.plan", args=(rid, params.epoch), queue=params.control_queue)
        store.log_event(rid, "plan re-dispatched", reason="its message was held by a silent node")
    if state == RequestState.PLANNING.value and _node_of(info.get("planner")) in dead:
        # the planner died with its node: plan again (deterministic, so the same units)
        store.name_owner(rid, "planner", "janitor")
        transfer_task.app.send_task("dms.plan", args=(rid, params.epoch), queue=params.control_queue)
        store.log_event(rid, "plan re-dispatched", reason=f"node {_node_of(info.get('planner'))} silent")
    if state == RequestState.FINALIZING.value and _node_of(info.get("finalizer")) in dead:
        store.name_owner(rid, "finalizer", "janitor")
        store.release_finalize_lock(rid)
        transfer_task.app.send_task("dms.finalize", args=(rid, params.epoch),
                                    queue=params.finalize_target)  # fmt: skip
        store.log_event(rid, "finalize re-dispatched", reason=f"node {_node_of(info.get('finalizer'))} silent")
    moved = 0
    for unit in registry.routed_units(rid):
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
    return moved + repair_lanes(store, transfer_task, params)
