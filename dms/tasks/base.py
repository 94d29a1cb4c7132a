"""DmsTask: the base class of every DMS task: cached clients, dispatch, failure bookkeeping."""

from __future__ import annotations

import logging
import time
from functools import cached_property
from typing import Any

from celery import Task

from dms.errors import UnitGone
from dms.model import RequestState, SyncParams
from dms.route.lanes import Lanes
from dms.route.placement import NoRoute, Placement, Route
from dms.route.queues import cluster_queue, nic_queue
from dms.settings import active_config, resolve_endpoints
from dms.state.nodes import Registry
from dms.state.requests import RequestStore, UnitProgress, connect

__all__ = ["DmsTask"]

log = logging.getLogger(__name__)

#: How long a publish keeps trying through a broker outage (a Redis restart, an AOF reload).
PUBLISH_PATIENCE = 180.0


class DmsTask(Task):  # type: ignore[misc]
    """A task instance lives once per worker process (Celery's "actor"), so the
    state-store client is created lazily once and reused by every call.

    Every DMS task takes the request id as its first argument. A task that
    raises (a bug, or Redis gone for longer than the retries) fails its request
    with the error, so a request never sits in a running state for nothing.
    """

    abstract = True

    @cached_property
    def store(self) -> RequestStore:
        return RequestStore(connect(resolve_endpoints().state_url))

    @cached_property
    def registry(self) -> Registry:
        return Registry.sharing(self.store)

    @cached_property
    def placement(self) -> Placement:
        return Placement(self.registry, active_config())

    def dispatch_unit(self, params: SyncParams, index: int, route: Route | None = None) -> None:
        """Publish transfer unit `index`, then remember it.

        Single node: to the request's data queue. Cross-cluster: the scheduler
        policy picks the path and the unit goes to its source NIC's queue; the
        message itself names no NIC (decision 0023, F7: a moved message must
        still be valid), the chosen path is recorded in Redis.
        Publish first, mark second: a crash in between re-publishes on redelivery
        (a harmless duplicate) instead of never publishing (a stalled request).
        """
        about = self.store.unit_description(params.request_id, index)
        queue = params.data_queue
        if params.clustered:
            if route is None:
                try:
                    nbytes = sum(p.length for p in self.store.load_unit(params.request_id, index))
                except UnitGone:
                    if self.store.unit_done(params.request_id, index):
                        return  # recorded meanwhile (its manifest is dropped then): no message is needed
                    raise
                try:
                    route = self.placement.route(params, index, nbytes)
                except NoRoute as exc:
                    # No path now (just after a Redis outage no heartbeat is current yet): a node of
                    # the source cluster takes it and routes it as it runs, retrying while there is
                    # none (TransferTask.current_route). Failing here would fail the request.
                    log.warning("request %s unit %d: %s; any node of cluster %s routes it when it runs",
                                params.request_id, index, exc, params.source_cluster)  # fmt: skip
                    queue, about = cluster_queue(str(params.source_cluster)), f"{about} (not routed yet)"
            if route is not None:
                queue = nic_queue(route.source.node, route.source.interface)
                via = f"{route.source.key} -> {route.destination.key if route.destination else 'local'}"
                about = f"{about} via {via}"
        self.publish(
            "dms.transfer",
            args=(params.request_id, index, params.epoch),
            queue=queue,
            argsrepr=f"({params.request_id!r}, {index}) {about}",  # what Flower shows
        )
        self.store.mark_dispatched(params.request_id, index, epoch=params.epoch)

    def dispatch_finalize(self, params: SyncParams) -> None:
        queue = params.finalize_target
        self.publish("dms.finalize", args=(params.request_id, params.epoch), queue=queue)
        self.store.mark_finalize_sent(params.request_id, epoch=params.epoch)

    def publish(self, name: str, args: tuple[Any, ...], queue: str, **options: Any) -> None:
        """send_task, riding out a broker outage for PUBLISH_PATIENCE seconds.

        Celery's own publish retry covers the connection errors kombu knows. Around a Redis
        restart a pooled producer can also fail otherwise (its channel's connection already
        torn down: AttributeError from kombu's Redis transport), and one failed publish of
        the next unit of a lane stalls the lane. So retry anything, dropping the pooled
        connections each time, and fail (the task's failure bookkeeping) only after that."""
        deadline = time.monotonic() + PUBLISH_PATIENCE
        delay = 0.2
        while True:
            try:
                self.app.send_task(name, args=args, queue=queue, **options)
                return
            except Exception as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("publishing %s to %s failed (%s: %s); trying again in %.1f s",
                            name, queue, type(exc).__name__, exc, delay)  # fmt: skip
                time.sleep(delay)
                delay = min(delay * 2, 3.0)
                try:
                    self.app.pool.force_close_all()
                except Exception:  # pragma: no cover - best effort: a fresh connection is made anyway
                    log.debug("could not drop the pooled broker connections", exc_info=True)

    def advance(self, params: SyncParams, index: int, progress: UnitProgress) -> None:
        """After unit `index` is recorded: start the next unit of its lane, or finalize.

        The lane rule (dms.route.lanes): the unit after `index` in its lane starts now that
        `index` is done. A cancelled request starts nothing more: the last of its units in
        flight to end sends finalize, so a cancel costs the units already published, not
        one empty task per unit left.
        """
        if progress.ended:  # the request ended, or is another incarnation now: its lanes are not ours
            return
        if self.store.is_cancelled(params.request_id):
            self.finalize_cancelled(params, progress)
            return
        nxt = Lanes(params.parallelism).successor(index)
        if nxt < progress.tasks_total and not self.store.was_dispatched(params.request_id, nxt):
            self.dispatch_unit(params, nxt)
        if progress.all_done and not progress.finalize_sent:
            self.dispatch_finalize(params)

    def finalize_cancelled(self, params: SyncParams, progress: UnitProgress) -> None:
        """Send a cancelled request's finalize once it is planned and no unit is in flight."""
        if progress.planned and not progress.finalize_sent and self.store.units_in_flight(params.request_id) <= 0:
            self.dispatch_finalize(params)

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        request_id = args[0] if args else kwargs.get("request_id")
        if not request_id:
            return
        try:
            self.store.set_state(
                request_id, RequestState.FAILED, error=f"{self.name} failed: {type(exc).__name__}: {exc}"
            )
        except Exception:  # the store itself may be what failed; the log is all we have
            log.exception("request %s: could not record the failure of %s", request_id, self.name)
