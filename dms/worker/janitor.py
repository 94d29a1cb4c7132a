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

A node can also come back before it is seen silent (a supervisor restarts its worker
within seconds): its heartbeat then names a new incarnation (dms.worker.incarnation).
Every running unit is claimed under the incarnation and pool process that runs it, and
every few seconds the sweep also looks at the claims: a unit whose claimant is gone
(another incarnation beats for its node, or its pool process is no longer in the pool),
or whose byte counter has not moved for stall_timeout whatever the heartbeats say, is
published again (the first to finish counts; the other's bytes are dropped, as for any
duplicate). A planner or finalizer whose incarnation is gone is treated like a silent one.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from dms.model import TERMINAL_STATES, RequestState
from dms.route.lanes import repair_lanes
from dms.route.placement import NoRoute
from dms.state.leases import PlanLease
from dms.state.nodes import NodeStatus, Registry
from dms.state.requests import RequestStore
from dms.worker import incarnation

__all__ = ["sweep"]

log = logging.getLogger(__name__)

#: A silent node is swept for this long, then forgotten until it sends a heartbeat again.
FORGET_AFTER = 300.0
#: A PENDING request whose plan message is in no queue for this long was taken by a dead worker.
PENDING_GRACE = 10.0
#: How many of the newest requests a sweep looks at when some node is dead.
SCAN_REQUESTS = 1000
#: How often (seconds) the claims of running units are looked at, deployment-wide.
CLAIMS_EVERY = 2.0
#: A unit claimed by a pool process missing from its node's last heartbeat is taken for
#: gone only once its claim is this old (the heartbeat's list of pids lags a fork).
POOL_LAG = 5.0
#: What a unit is claimed under once the janitor published it again and no transfer has
#: started it yet: neither stalled nor gone (it waits in a queue).
REQUEUED = "queued"


def sweep(store: RequestStore, registry: Registry, transfer_task: Any, stall_timeout: float | None = None) -> int:
    """One pass; returns how many units were re-dispatched. Never raises. With
    `stall_timeout`, the claims of running units are looked at too (every CLAIMS_EVERY s)."""
    try:
        if not registry.take_sweep_lock():
            return 0  # another node is sweeping
    except Exception:
        return 0
    try:
        statuses = {n.node: n for n in registry.live_nodes(fresh=True)}
        live = set(statuses)
        transfer_task.registry.live_nodes(fresh=True)  # the placement must not route to the dead either
        # a node that beats again starts afresh: should it fall silent again later, it is
        # swept for FORGET_AFTER from then, not forgotten at once for its old silence
        registry.clear_silence(sorted(live))
        dead = registry.known_nodes() - live
        claims = stall_timeout is not None and registry.take_turn("claims", CLAIMS_EVERY)
        if not dead and not claims:
            return 0
        moved = 0
        for info in store.list_requests(limit=SCAN_REQUESTS):
            if RequestState(info["state"]) in TERMINAL_STATES:
                continue
            rid = info["request_id"]
            if dead:
                moved += _sweep_request(store, registry, transfer_task, rid, dead)
            if claims:
                assert stall_timeout is not None
                moved += _sweep_claims(store, transfer_task, rid, info, statuses, stall_timeout)
        if not dead:
            return moved
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


def _gone(claimant: str, statuses: dict[str, NodeStatus]) -> bool:
    """Whether the incarnation `claimant` (maybe "/pid"-suffixed) is over: its node beats
    under another incarnation. A silent node is the dead-node sweep's matter."""
    inc = claimant.partition("/")[0]
    status = statuses.get(incarnation.node_of(inc))
    return bool(inc and status is not None and status.incarnation and status.incarnation != inc)


def _sweep_claims(
    store: RequestStore,
    transfer_task: Any,
    rid: str,
    info: dict[str, Any],
    statuses: dict[str, NodeStatus],
    stall_timeout: float,
) -> int:
    """Publish again the units whose claimant is gone or whose counter stood still for
    `stall_timeout`; plan or finalize again when their owner's incarnation is gone."""
    params = store.params(rid)
    state = info.get("state")
    for role, step_state, again in (("planner", RequestState.PLANNING, _plan_again),
                                    ("finalizer", RequestState.FINALIZING, _finalize_again)):  # fmt: skip
        owner = str(info.get(f"{role}_incarnation") or "")
        if state == step_state.value and owner and _gone(owner, statuses):
            again(store, transfer_task, params, f"{owner} is gone (its node restarted)")
    units, now = store.running_units(rid)
    moved = 0
    for unit, (claim, at) in sorted(units.items()):
        if claim == REQUEUED:
            continue
        inc, _, pid = claim.partition("/")
        status = statuses.get(incarnation.node_of(inc))
        if _gone(inc, statuses):
            reason = f"{inc} is gone (its node restarted)"
        elif status and status.pool and pid.isdigit() and int(pid) not in status.pool and now - at > POOL_LAG:
            reason = f"pool process {pid} of {status.node} is gone"
        elif now - at > stall_timeout:
            reason = f"no byte moved for {now - at} s (stall_timeout {stall_timeout:g} s)"
        else:
            continue
        if store.unit_done(rid, unit):
            continue  # recorded meanwhile (its claim goes with the record)
        route = None
        if params.clustered:
            recorded = transfer_task.registry.route_of(rid, unit)
            # a stalled unit avoids the destination it stalled on (tried again if it is the only one)
            stuck_on = {recorded[1]} if recorded and recorded[1] and now - at > stall_timeout else set()
            try:
                route = transfer_task.placement.route(params, unit, recorded[2] if recorded else 0, exclude=stuck_on)
            except NoRoute as exc:
                log.warning("request %s unit %d: %s", rid, unit, exc)
                continue
        store.claim_unit(rid, unit, REQUEUED)
        transfer_task.dispatch_unit(params, unit, route)
        store.log_event(rid, "unit re-dispatched", unit=unit, reason=reason, claimed_by=claim)
        moved += 1
    if moved:
        log.warning("janitor: %d running unit(s) of request %s published again", moved, rid)
    return moved


def _plan_again(store: RequestStore, transfer_task: Any, params: Any, reason: str) -> None:
    """Publish a request's plan again (its planner is gone); planning is deterministic."""
    rid = params.request_id
    store.name_owner(rid, "planner", "janitor")
    PlanLease.break_lease(store, rid)  # its holder is gone: the new run need not wait it out
    transfer_task.publish("dms.plan", args=(rid, params.epoch), queue=params.control_queue)
    store.log_event(rid, "plan re-dispatched", reason=reason)


def _finalize_again(store: RequestStore, transfer_task: Any, params: Any, reason: str) -> None:
    """Publish a request's finalize again (its finalizer is gone), freeing the lock it held."""
    rid = params.request_id
    store.name_owner(rid, "finalizer", "janitor")
    store.release_finalize_lock(rid)
    transfer_task.publish("dms.finalize", args=(rid, params.epoch), queue=params.finalize_target)
    store.log_event(rid, "finalize re-dispatched", reason=reason)


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
        _plan_again(store, transfer_task, params, "its message was held by a silent node")
    if state == RequestState.PLANNING.value and _node_of(info.get("planner")) in dead:
        # the planner died with its node: plan again (deterministic, so the same units)
        _plan_again(store, transfer_task, params, f"node {_node_of(info.get('planner'))} silent")
    if state == RequestState.FINALIZING.value and _node_of(info.get("finalizer")) in dead:
        _finalize_again(store, transfer_task, params, f"node {_node_of(info.get('finalizer'))} silent")
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
