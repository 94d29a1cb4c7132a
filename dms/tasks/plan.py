"""dms.plan: validate, walk and cut the tree into units, then start the first lanes."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from dms.errors import ConfigError, ConfinementError, PathError, RequestExists
from dms.fs.beneath import destination_beneath
from dms.fs.names import shown
from dms.fs.paths import validate_pair, validate_source
from dms.fs.roots import check_roots, under_roots
from dms.model import TERMINAL_STATES, EndReason, RequestState, SyncParams
from dms.plan.fanout import fan_out_wanted, fanned_out_walk, walk_subtree
from dms.plan.planner import plan_tree
from dms.request import make_params, task_request_id
from dms.route.lanes import Lanes
from dms.settings import active_config, current_node
from dms.state.leases import LEASE_SECONDS, PlanLease, PlanSuperseded
from dms.state.requests import UnitProgress
from dms.state.walks import ClaimLost, WalkLost, WalkStore
from dms.tasks.base import DmsTask
from dms.worker import incarnation
from dms.worker.app import app

__all__ = ["plan", "run_plan", "sync", "walk"]

#: A run that finds the plan lease held looks again this much later.
LEASE_POLL_SECONDS = LEASE_SECONDS / 4
#: A plan whose walk Redis lost part of is walked again at most this often, then fails.
WALK_LOST_RETRIES = 3


@app.task(name="dms.plan", bind=True, base=DmsTask, trail=False, track_started=True)  # type: ignore[untyped-decorator]
def plan(self: DmsTask, request_id: str, epoch: int = 0) -> dict[str, Any]:
    """Plan a request whose record exists (dms-submit and dms.client.submit.submit create it)."""
    base, current = self.store.plan_epochs(request_id)
    if not base <= epoch <= current:  # an earlier incarnation of a resumed request
        return {"request_id": request_id, "stale": True}
    return run_plan(self, request_id)


class SyncTask(DmsTask):
    abstract = True

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """As DmsTask's, for the request this task created: its first arguments are paths, and its
        id comes from its options or from the task id (a request left in PLANNING for good
        otherwise, which no cancel ended)."""
        if isinstance(exc, RequestExists):
            return  # the id names another request, which goes on
        request_id = (kwargs or {}).get("request_id") or task_request_id(task_id)
        super().on_failure(exc, task_id, (request_id,), {}, einfo)


@app.task(name="dms.sync", bind=True, base=SyncTask, trail=False, track_started=True)  # type: ignore[untyped-decorator]
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
        stored = self.store.params(request_id)  # its epoch moves if its plan started over
        if dataclasses.replace(stored, epoch=params.epoch) != params:
            raise
    return run_plan(self, request_id)


@app.task(name="dms.walk", bind=True, base=DmsTask, ignore_result=True)  # type: ignore[untyped-decorator]
def walk(self: DmsTask, request_id: str, epoch: int, sub: int, run: str = "") -> dict[str, Any]:
    """Walk one group of top-level subtrees of a request's source for the plan run `run`
    (dms.plan.fanout); a run that no longer holds the plan lease gets nothing more."""
    store = self.store
    params = store.live_params(request_id, epoch)
    lease = PlanLease(store, request_id, run)
    if params is None or store.is_planned(request_id) or not run or lease.holder() != run:
        return {"request_id": request_id, "subtree": sub, "status": "stale"}
    walks = WalkStore(store, run)
    rels = walks.group_dirs(request_id, sub)
    if rels is None:
        return {"request_id": request_id, "subtree": sub, "status": "stale"}
    if walks.is_done(request_id, sub):
        return {"request_id": request_id, "subtree": sub, "status": "done already"}
    owner = f"{self.request.hostname}-{self.request.id}"
    if not walks.claim(request_id, sub, owner):
        return {"request_id": request_id, "subtree": sub, "status": "claimed by another"}

    def fence() -> None:
        if lease.holder() != run:
            raise PlanSuperseded(f"plan run {run} of {request_id} lost its lease")

    try:
        walk_subtree(walks, params, sub, rels, owner, fence)
    except (PlanSuperseded, ClaimLost) as exc:
        return {"request_id": request_id, "subtree": sub, "status": f"stale: {exc}"}
    except BaseException:
        if walks.holds_claim(request_id, sub, owner):
            walks.release_claim(request_id, sub)  # the planner walks it itself
        raise
    store.log_event(request_id, "subtrees walked", subtrees=len(rels), first=rels[0] if rels else "",
                    worker=self.request.hostname)  # fmt: skip
    return {"request_id": request_id, "subtree": sub, "status": "walked"}


def run_plan(self: DmsTask, request_id: str) -> dict[str, Any]:
    """Plan once, or, for a redelivered plan message, pick up where the last run stopped.

    Only the holder of the plan lease writes the plan (dms.state.leases): a run that finds
    another run planning tries again later, when that run has finished (the request is
    planned) or lost its lease (it died, or stalled for LEASE_SECONDS)."""
    store = self.store
    params = store.params(request_id)
    # Keep the caller's chain out of every transfer message: finalize re-dispatches it.
    if self.request.chain:
        store.save_chain(request_id, self.request.chain)
        self.request.chain = None
    info = store.get(request_id) or {}
    if RequestState(info.get("state", "PENDING")) in TERMINAL_STATES:
        return {"request_id": request_id, "state": info["state"]}
    if info.get("planned"):
        if self.request.retries:  # a run that waited for the lease: the holder started the lanes
            return {"request_id": request_id, "units": int(info["tasks_total"])}
        return _start_lanes(self, params, int(info["tasks_total"]), store.mark_planned(request_id), redelivered=True)
    lease = PlanLease(store, request_id)
    if not lease.acquire():
        if not self.request.retries:
            store.log_event(request_id, "plan waits: another run of it holds the plan lease", holder=lease.holder())
        # as often as it takes: the holder ends (planned), or its lease runs out
        raise self.retry(countdown=LEASE_POLL_SECONDS, max_retries=self.request.retries + 1)
    try:
        return _plan_holding(self, params, lease)
    except PlanSuperseded as exc:
        store.log_event(request_id, "plan run superseded", run=lease.token, error=str(exc))
        return {"request_id": request_id, "superseded": True}
    except WalkLost as exc:
        if not lease.held():  # the run that took over dropped this run's walk
            store.log_event(request_id, "plan run superseded", run=lease.token, error=str(exc))
            return {"request_id": request_id, "superseded": True}
        # Redis lost part of the walk: walk again, from the start (under the epoch now current)
        store.log_event(request_id, "plan run interrupted", run=lease.token, error=str(exc))
        if store.add_count(request_id, "walks_lost", 1) > WALK_LOST_RETRIES:
            raise  # fails the request (DmsTask.on_failure): something keeps losing the walk
        lease.release()
        args = (request_id, store.params(request_id).epoch) if self.name == "dms.plan" else None
        raise self.retry(args=args, countdown=1, max_retries=self.request.retries + 1) from exc
    finally:
        lease.release()


def _plan_holding(self: DmsTask, params: SyncParams, lease: PlanLease) -> dict[str, Any]:
    store, request_id = self.store, params.request_id
    info = store.get(request_id) or {}  # as the last holder left it
    if info.get("planned") or RequestState(info.get("state", "PENDING")) in TERMINAL_STATES:
        return {"request_id": request_id, "state": info.get("state")}  # the last holder finished it
    store.name_owner(request_id, "planner", self.request.hostname, incarnation.current())  # for the janitor
    if store.is_cancelled(request_id):  # cancelled before planning began
        self.dispatch_finalize(params)
        return {"request_id": request_id, "units": 0, "cancelled": True}
    if int(info.get("tasks_total", 0)) > 0:
        params = _start_over(self, params)
    planned = _walk_and_cut(self, params, lease)
    if planned is None:
        return {"request_id": request_id, "state": RequestState.FAILED.value}
    total, progress = planned
    return _start_lanes(self, params, total, progress, redelivered=False)


def _start_over(self: DmsTask, params: SyncParams) -> SyncParams:
    """Units written already, but never marked planned: an earlier run of this plan was
    interrupted (its worker died, Redis restarted under it, or its lease ran out). Units it
    published may have run since and changed the destination, so this walk would number
    the files differently: start a new incarnation (epoch), as resume does, carrying staged
    chunks over by path. Late tasks of the old epoch are no-ops."""
    store, request_id = self.store, params.request_id
    new = dataclasses.replace(params, epoch=params.epoch + 1)
    store.begin_epoch(request_id, new)  # from here on, the old epoch's tasks record and route nothing
    if params.clustered:
        self.registry.release_all(request_id)  # the old units' NIC load
    carried = store.restart_plan(request_id, new)
    store.log_event(request_id, "plan started over", reason="an earlier run of its plan was interrupted",
                    epoch=new.epoch, carried_files=carried)  # fmt: skip
    return new


def _start_lanes(
    self: DmsTask, params: SyncParams, total: int, progress: UnitProgress, *, redelivered: bool
) -> dict[str, Any]:
    """Publish the head of every lane not started yet (all of them again for a redelivered
    plan: duplicates are harmless), or finalize when nothing is left to run."""
    store, request_id = self.store, params.request_id
    if store.is_cancelled(request_id):  # cancelled while planning: start nothing more, let finalize end it
        self.finalize_cancelled(params, progress)  # now, or when the last unit in flight ends
        return {"request_id": request_id, "units": total, "cancelled": True}
    for index in Lanes(params.parallelism).heads(total):
        if not store.unit_done(request_id, index) and (redelivered or not store.was_dispatched(request_id, index)):
            self.dispatch_unit(params, index)
    if progress.all_done and not progress.finalize_sent:
        self.dispatch_finalize(params)
    return {"request_id": request_id, "units": total}


def _walk_and_cut(self: DmsTask, params: SyncParams, lease: PlanLease) -> tuple[int, UnitProgress] | None:
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
        self.publish("dms.walk", args=(request_id, params.epoch, sub, lease.token), queue=params.control_queue,
                     argsrepr=f"({request_id!r}, {sub}) walk {first}/ …")  # fmt: skip

    try:
        _check_paths(params)
        entries = fanned_out_walk(store, params, publish_walk, lease) if fan_out_wanted(params) else None
        totals = plan_tree(store, params, on_unit=start_unit, entries=entries, fence=lease.check)
    except (PathError, ConfinementError, ConfigError, OSError) as exc:  # ConfigError: a cluster this node's
        # workers.yml does not know (a plain worker given a cross-cluster request)
        store.set_state(request_id, RequestState.FAILED, error=f"planning failed: {exc}", end_reason=EndReason.PLANNING)
        store.log_event(request_id, "planning failed", error=str(exc))
        self.dispatch_finalize(params)  # reports, and runs the caller's chain
        return None
    lease.check()
    WalkStore(store, lease.token).drop(request_id)
    progress = store.mark_planned(request_id, **totals.as_fields())
    store.set_state(request_id, RequestState.TRANSFERRING)
    store.log_event(request_id, "planned", files=totals.files_total, bytes=totals.bytes_total,
                    units=totals.tasks_total, uptodate=totals.files_uptodate, skipped=totals.skipped,
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
