"""dms.plan: validate, walk and cut the tree into units, then start the first lanes."""

from __future__ import annotations

import os
from typing import Any

from dms.errors import ConfinementError, PathError, RequestExists
from dms.fs.beneath import destination_beneath
from dms.fs.names import shown
from dms.fs.paths import validate_pair, validate_source
from dms.fs.roots import check_roots, under_roots
from dms.model import TERMINAL_STATES, RequestState, SyncParams
from dms.plan.fanout import fan_out_wanted, fanned_out_walk, walk_subtree
from dms.plan.planner import plan_tree
from dms.request import make_params, task_request_id
from dms.route.lanes import Lanes, restart_lane_heads
from dms.settings import active_config, current_node
from dms.state.requests import UnitProgress
from dms.state.walks import WalkStore
from dms.tasks.base import DmsTask
from dms.worker import incarnation
from dms.worker.app import app

__all__ = ["plan", "run_plan", "sync", "walk"]


@app.task(name="dms.plan", bind=True, base=DmsTask, trail=False, track_started=True)  # type: ignore[untyped-decorator]
def plan(self: DmsTask, request_id: str, epoch: int = 0) -> dict[str, Any]:
    """Plan a request whose record exists (dms-submit and dms.client.submit.submit create it)."""
    if self.store.params(request_id).epoch != epoch:  # an earlier incarnation of a resumed request
        return {"request_id": request_id, "stale": True}
    return run_plan(self, request_id)


@app.task(name="dms.sync", bind=True, base=DmsTask, trail=False, track_started=True)  # type: ignore[untyped-decorator]
def sync(self: DmsTask, source: str, destination: str, **options: Any) -> dict[str, Any]:
    """Create the request and plan it: what dms.sync_signature() and Flower's HTTP API publish.

    The request id is `options["request_id"]`, or derived from this task's id so a
    redelivered message finds the request it already created. Chained tasks run
    after dms.finalize, with its summary.
    """
    request_id = options.pop("request_id", None) or task_request_id(self.request.id)
    params = make_params(source, destination, request_id=request_id, defaults=active_config().defaults, **options)
    if not params.clustered:
        validate_pair(params.source, params.destination)  # refused before the request exists
    try:
        self.store.create(params)
    except RequestExists:
        if self.store.params(request_id) != params:
            raise
    return run_plan(self, request_id)


@app.task(name="dms.walk", bind=True, base=DmsTask, ignore_result=True)  # type: ignore[untyped-decorator]
def walk(self: DmsTask, request_id: str, epoch: int, sub: int) -> dict[str, Any]:
    """Walk one group of top-level subtrees of a request's source for its planner (dms.plan.fanout)."""
    store = self.store
    walks = WalkStore(store)
    params = store.live_params(request_id, epoch)
    if params is None or store.is_planned(request_id):
        return {"request_id": request_id, "subtree": sub, "status": "stale"}
    if walks.is_done(request_id, sub):
        return {"request_id": request_id, "subtree": sub, "status": "done already"}
    owner = f"{self.request.hostname}-{self.request.id}"
    if not walks.claim(request_id, sub, owner):
        return {"request_id": request_id, "subtree": sub, "status": "claimed by another"}
    try:
        rels = walks.group_dirs(request_id, sub)
        walk_subtree(store, params, sub, rels, owner)
        store.log_event(request_id, "subtrees walked", subtrees=len(rels), first=rels[0] if rels else "",
                        worker=self.request.hostname)  # fmt: skip
    except BaseException:
        walks.release_claim(request_id, sub)  # the planner walks it itself
        raise
    return {"request_id": request_id, "subtree": sub, "status": "walked"}


def run_plan(self: DmsTask, request_id: str) -> dict[str, Any]:
    """Plan once, or, for a redelivered plan message, pick up where the last run stopped."""
    store = self.store
    params = store.params(request_id)
    # Keep the caller's chain out of every transfer message: finalize re-dispatches it.
    if self.request.chain:
        store.save_chain(request_id, self.request.chain)
        self.request.chain = None
    info = store.get(request_id) or {}
    if RequestState(info.get("state", "PENDING")) in TERMINAL_STATES:
        return {"request_id": request_id, "state": info["state"]}
    store.name_owner(request_id, "planner", self.request.hostname, incarnation.current())  # for the janitor
    if not info.get("planned") and store.is_cancelled(request_id):  # cancelled before planning began
        self.dispatch_finalize(params)
        return {"request_id": request_id, "units": 0, "cancelled": True}
    # Units written already, but never marked planned: an earlier run of this plan was
    # interrupted (its worker died, or Redis restarted under it), and messages of units it
    # or their lanes had published may be gone with it: restart every lane at the end.
    interrupted = not info.get("planned") and int(info.get("tasks_total", 0)) > 0
    redelivered = bool(info.get("planned"))
    if redelivered:  # re-publish the first lanes (duplicates are harmless)
        total = int(info["tasks_total"])
        progress = store.mark_planned(request_id)
    else:
        planned = _walk_and_cut(self, params)
        if planned is None:
            return {"request_id": request_id, "state": RequestState.FAILED.value}
        total, progress = planned
    if store.is_cancelled(request_id):  # cancelled while planning: start nothing more, let finalize end it
        self.finalize_cancelled(params, progress)  # now, or when the last unit in flight ends
        return {"request_id": request_id, "units": total, "cancelled": True}
    if interrupted:
        restart_lane_heads(store, self, params, reason="its plan had been interrupted")  # finalize too, if due
        return {"request_id": request_id, "units": total}
    for index in Lanes(params.parallelism).heads(total):
        if not store.unit_done(request_id, index) and (redelivered or not store.was_dispatched(request_id, index)):
            self.dispatch_unit(params, index)
    if progress.all_done and not progress.finalize_sent:
        self.dispatch_finalize(params)
    return {"request_id": request_id, "units": total}


def _walk_and_cut(self: DmsTask, params: SyncParams) -> tuple[int, UnitProgress] | None:
    """Walk the tree and cut it into units, starting each unit as soon as its lane allows;
    returns the unit count and progress, or None when planning failed (the request is
    FAILED and its finalize sent)."""
    store, request_id = self.store, params.request_id
    store.set_state(request_id, RequestState.PLANNING)
    store.log_event(request_id, "planning", worker=self.request.hostname)
    lanes = Lanes(params.parallelism)
    started_during_walk: list[int] = []

    def start_unit(index: int) -> None:
        """Transfers start while the walk goes on; a transfer that finishes looks for the
        next unit of its lane too: whoever sees both does it."""
        if params.dry_run or store.was_dispatched(request_id, index):
            return
        if lanes.may_start(index, lambda k: store.unit_done(request_id, k)) and not store.is_cancelled(request_id):
            self.dispatch_unit(params, index)
            started_during_walk.append(index)

    def publish_walk(sub: int, first: str) -> None:
        self.publish("dms.walk", args=(request_id, params.epoch, sub), queue=params.control_queue,
                     argsrepr=f"({request_id!r}, {sub}) walk {first}/ …")  # fmt: skip

    try:
        _check_paths(params)
        entries = fanned_out_walk(store, params, publish_walk) if fan_out_wanted(params) else None
        totals = plan_tree(store, params, on_unit=start_unit, entries=entries)
    except (PathError, ConfinementError, OSError) as exc:
        store.set_state(request_id, RequestState.FAILED, error=f"planning failed: {exc}")
        store.log_event(request_id, "planning failed", error=str(exc))
        self.dispatch_finalize(params)  # reports, and runs the caller's chain
        return None
    WalkStore(store).drop(request_id)
    progress = store.mark_planned(request_id, **totals.as_fields())
    store.set_state(request_id, RequestState.TRANSFERRING)
    store.log_event(request_id, "planned", files=totals.files_total, bytes=totals.bytes_total,
                    units=totals.tasks_total, skipped=totals.skipped,
                    started_during_walk=len(started_during_walk))  # fmt: skip
    return totals.tasks_total, progress


def _check_paths(params: SyncParams) -> None:
    """Where the planner runs, check what it can see: both paths on one node or
    cluster; only the source (and the configured roots) across clusters. Where this node
    has roots, the source's real path (symbolic links resolved) must lie under one of
    them, single-node requests included: a symlink inside a root that points outside is
    refused, not followed. The destination is made below its root without following one
    (dms.fs.beneath.destination_beneath)."""
    if params.clustered:
        check_roots(active_config(), params)
    me = current_node()
    if me is not None and me.roots:
        real_roots = [os.path.realpath(r) for r in me.roots]
        real_source = os.path.realpath(params.source)
        if not under_roots(params.source, me.roots) or not under_roots(real_source, real_roots):
            raise ConfinementError(
                f"source {shown(params.source)} (really {shown(real_source)}) is outside the roots of node {me.name}"
            )
    visible = not params.clustered or params.source_cluster == params.destination_cluster
    if not visible:
        validate_source(params.source)
        return
    validate_pair(params.source, params.destination)
    if not params.dry_run:  # a dry run changes nothing, the destination's existence included
        with destination_beneath(params) as beneath:
            beneath.dir_fd("")
