"""dms.transfer: move one unit (a batch of chunks or small files) into staging files.

Idempotent: pieces are pwrite()s at fixed offsets of a staging file and their
digests are recorded first-write-wins, so running a unit twice writes the same
bytes and counts once. Per-file errors are recorded, never raised, so the
request always reaches finalize.

Single node: the local copier. Cross-cluster: this runs on a source-cluster
node (the NIC queue it came from names the NIC to send from) and pushes the
pieces to the destination receiver chosen by the scheduler. If that
connection fails, the unit is routed again, avoiding the failed endpoint, and
retried: a dead receiver or NIC costs a retry, not the files.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from dms import native
from dms.config import NodeConfig, read_secrets, with_secrets
from dms.errors import AuthenticationError, ConfinementError, ProtocolError, UnitGone
from dms.finalize import strays
from dms.fs.roots import under_roots
from dms.model import FailedPiece, SyncParams, UnitPiece
from dms.route.nics import same_rail, usable
from dms.route.placement import NoRoute, Route
from dms.route.queues import nic_of_queue, nic_queue
from dms.settings import active_config, current_node
from dms.state.nodes import NicEndpoint
from dms.state.requests import RequestStore, UnitProgress
from dms.tasks.base import DmsTask
from dms.transfer.unit import UnitResult, copy_unit, send_resending
from dms.worker import incarnation
from dms.worker.app import app

__all__ = ["TransferTask", "transfer"]

log = logging.getLogger(__name__)

#: Re-routes of one unit after connection failures before its files are failed.
MAX_ROUTE_RETRIES = int(os.environ.get("DMS_TRANSFER_RETRIES", "6"))
#: Seconds before a re-routed unit first runs again; doubled at each retry up to RETRY_CAP,
#: so the default 6 retries wait about a minute in all (a destination worker's restart, a
#: data_timeout-long outage) before the unit's files fail.
RETRY_DELAY = float(os.environ.get("DMS_TRANSFER_RETRY_DELAY", "1"))
RETRY_CAP = 30.0
#: Test-only fault hook: flip one byte every N payload bytes on the wire (0: off),
#: on the first attempt of every unit.
CORRUPT_EVERY = int(os.environ.get("DMS_TEST_CORRUPT_EVERY", "0"))
#: Times a piece rejected by the receiver's checksum (corrupted in flight) is sent again.
CORRUPTION_RETRIES = int(os.environ.get("DMS_CORRUPTION_RETRIES", "2"))
SEND_METHOD = os.environ.get("DMS_SEND_METHOD", "sendfile")
#: How long a path whose connection failed is avoided by the scheduler.
PATH_DOWN_SECONDS = 30.0


class TransferTask(DmsTask):
    abstract = True

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """An unexpected exception fails the unit's files, not the whole request,
        and still counts the unit, so finalize runs and names what failed."""
        request_id, index = args[0], args[1]
        epoch = args[2] if len(args) > 2 else 0
        try:
            if self.store.params(request_id).epoch != epoch:
                return
            self.fail_unit(request_id, index, f"transfer task failed: {type(exc).__name__}: {exc}", epoch)
        except Exception:
            super().on_failure(exc, task_id, args, kwargs, einfo)

    def fail_unit(self, request_id: str, index: int, message: str, epoch: int) -> None:
        """Fail every piece of the unit, as a task of incarnation `epoch` (its message's)."""
        params = self.store.params(request_id)
        try:
            pieces = self.store.load_unit(request_id, index)
        except UnitGone:
            if not self.store.unit_done(request_id, index):
                raise
            pieces = []  # another copy recorded it first: only the lane is left to advance
        failed = [FailedPiece(p.file.file_id, p.file.relpath, message) for p in pieces]
        progress = self.store.record_unit(request_id, index, [], failed, epoch=epoch, records=[p.file for p in pieces])
        if params.clustered:
            self.registry.release(request_id, [index])
        self.advance(params, index, progress)

    def transfer_clustered(
        self, params: SyncParams, index: int, pieces: list[UnitPiece], options: dict[str, Any]
    ) -> tuple[UnitResult, str] | None:
        me = current_node()
        if me is None or me.cluster != params.source_cluster:
            where = f"node {me.name} of cluster {me.cluster}" if me else "a worker started without --dms-node"
            self.fail_unit(params.request_id, index, f"unit reached {where}, not cluster {params.source_cluster}",
                           params.epoch)  # fmt: skip
            return None
        if not under_roots(params.source, me.roots):
            outside = ConfinementError(f"source {params.source} is outside node {me.name}'s roots")
            self.fail_unit(params.request_id, index, str(outside), params.epoch)
            return None
        nic = self.my_nic(me)
        if nic is None:
            self.retry_later(params, index, f"every data NIC of node {me.name} is down")
            return None
        route = self.current_route(params, index, me, pieces)
        if route is None:
            return None
        if route.destination is None:
            return copy_unit(
                params, pieces, **options, may_publish=lambda: not options["cancelled"]()
            ), f"{me.name} local"
        dst = route.destination

        attempt = 0
        secret = b""  # set by send_with: the current secret, then the previous one if refused

        def make_sender(specs: list[native.CopySpec]) -> native.UnitSender:
            sender = native.UnitSender(
                specs,
                nic.address,
                dst.address,
                dst.port,
                secret,
                method=SEND_METHOD,
                timeout_ms=int(active_config().defaults.data_timeout * 1000),
            )
            if CORRUPT_EVERY and attempt == 0:  # test-only fault: the first attempt of every unit is corrupted
                sender.corrupt_in_flight(CORRUPT_EVERY)
            return sender

        via = f"{me.name}/{nic.interface} -> {dst.key}"

        def resending(pieces_again: int, attempt_now: int) -> None:
            nonlocal attempt
            attempt = attempt_now
            self.store.log_event(params.request_id, "pieces resent", unit=index, pieces=pieces_again,
                                 reason="corrupted in flight", attempt=attempt_now)  # fmt: skip

        def send_with(use: bytes) -> UnitResult:
            nonlocal secret
            secret = use
            return send_resending(params, pieces, make_sender, CORRUPTION_RETRIES, resending, **options)

        try:
            return with_secrets(_secrets(me), send_with), via
        except (OSError, ProtocolError, AuthenticationError) as exc:
            # a refused handshake is retried like a failed connection (a rotation in progress on
            # the peer ends within the retries), then fails the unit naming the refusal
            self.registry.mark_path_down(f"{me.name}/{nic.interface}", dst.key, PATH_DOWN_SECONDS)
            self.reroute(params, index, pieces, failed=dst, error=exc)
            return None

    def leave_strays(self, params: SyncParams, pieces: list[UnitPiece]) -> None:
        """This copy of a unit lost: have the staging names it may have created after its files
        were published removed once the request ends (dms.finalize.strays), or now if it has."""
        blob = strays.describe(params, pieces)
        if self.store.note_strays(params.request_id, blob) == 0:  # ended already: tidy on the destination's side
            self.publish("dms.tidy", args=(params.request_id, blob), queue=params.finalize_target)

    def my_nic(self, me: NodeConfig) -> Any:
        """The NIC to send from: the one whose queue delivered this message (the message may
        have been moved from another queue by an operator or a janitor), else the first; if
        that NIC is down, another of this node's NICs that is not (None if all are down)."""
        iface = nic_of_queue((self.request.delivery_info or {}).get("routing_key"), me.name)
        ordered = sorted(me.data, key=lambda n: n.interface != iface)
        return next((n for n in ordered if usable(n.interface)), None)

    def current_route(self, params: SyncParams, index: int, me: NodeConfig, pieces: list[UnitPiece]) -> Route | None:
        """The recorded destination of this unit, if its node is still alive; else a fresh one."""
        recorded = self.registry.route_of(params.request_id, index)
        # Only a route recorded for this node: a copy of the unit that another node's queue
        # held (a duplicate, a message put back) would otherwise send from a NIC of this node
        # picked by the other node's interface name, maybe on another rail than the destination.
        if recorded is not None and recorded[0].partition("/")[0] == me.name:
            src_key, dst_key, _ = recorded
            if not dst_key:
                return Route(_endpoint_of(me, src_key), None)
            node_name, _, iface = dst_key.partition("/")
            status = self.registry.node(node_name)
            source = _endpoint_of(me, src_key)
            if status is not None and status.receiver:
                for nic in status.nics:
                    if nic.interface == iface and same_rail(source.network, nic.network):
                        return Route(source, nic)
        try:
            return self.placement.route(params, index, sum(p.length for p in pieces), source_node=me.name)
        except NoRoute as exc:
            self.retry_later(params, index, str(exc))
            return None

    def reroute(
        self, params: SyncParams, index: int, pieces: list[UnitPiece], failed: NicEndpoint, error: Exception
    ) -> None:
        message = f"{failed.key}: {type(error).__name__}: {error}"
        if self.store.live_params(params.request_id, params.epoch) is None:
            # a late copy whose request ended (or was resumed) while it tried to connect: nothing
            # to route again, and nothing to add to an ended request's log
            log.info("request %s unit %d: data connection failed (%s) after the request ended", params.request_id,
                     index, message)  # fmt: skip
            return
        log.warning(
            "request %s unit %d: data connection failed (%s); routing it again", params.request_id, index, message
        )
        self.store.log_event(params.request_id, "unit rerouted", unit=index, error=message)
        try:
            route = self.placement.route(params, index, sum(p.length for p in pieces), exclude={failed.key})
        except NoRoute as exc:
            self.retry_later(params, index, f"{message}; {exc}")
            return
        if self.request.retries >= MAX_ROUTE_RETRIES:
            tries = self.request.retries + 1
            self.fail_unit(params.request_id, index, f"data connection failed {tries} times; last: {message}",
                           params.epoch)  # fmt: skip
            return
        self.retry(queue=nic_queue(route.source.node, route.source.interface), countdown=self.backoff(),
                   max_retries=MAX_ROUTE_RETRIES, exc=None)  # fmt: skip

    def retry_later(self, params: SyncParams, index: int, message: str) -> None:
        if self.request.retries >= MAX_ROUTE_RETRIES:
            self.fail_unit(params.request_id, index, message, params.epoch)
            return
        self.retry(countdown=self.backoff(), max_retries=MAX_ROUTE_RETRIES, exc=None)

    def backoff(self) -> float:
        """Seconds before the next attempt: RETRY_DELAY doubled per retry so far, at most RETRY_CAP."""
        return float(min(RETRY_DELAY * 2 ** min(self.request.retries, 16), RETRY_CAP))


def _wrote(result: UnitResult) -> bool:
    """Whether a run of a unit may have created a staging file (it got past its first check)."""
    return bool(result.ok or result.failed_pieces or result.bytes_moved)


def _secrets(node: NodeConfig) -> tuple[bytes, bytes]:
    """Read for every unit (a small file): a secret rotated on this node applies to its next unit."""
    return read_secrets(node, active_config().path)


@app.task(name="dms.transfer", bind=True, base=TransferTask, ignore_result=True, max_retries=None)  # type: ignore[untyped-decorator]
def transfer(self: TransferTask, request_id: str, unit_index: int, epoch: int = 0) -> dict[str, Any]:
    store = self.store
    params = store.live_params(request_id, epoch)
    if params is None:  # a late duplicate, or a task of an earlier incarnation: never recreate staging files
        return {"request_id": request_id, "unit": unit_index, "status": "stale"}
    if store.unit_done(request_id, unit_index):  # a duplicate (re-dispatched by the janitor, redelivered)
        # the first run may have died between recording the unit and starting the next of its
        # lane: advancing again is idempotent (a unit is published once, finalize once)
        self.advance(params, unit_index, store.record_unit(request_id, None, [], [], epoch=epoch))
        return {"request_id": request_id, "unit": unit_index, "status": "done already"}
    try:
        pieces = store.load_unit(request_id, unit_index)
    except UnitGone:  # recorded by another copy since the check above: its manifest is dropped
        if not store.unit_done(request_id, unit_index):
            raise
        self.advance(params, unit_index, store.record_unit(request_id, None, [], [], epoch=epoch))
        return {"request_id": request_id, "unit": unit_index, "status": "done already"}
    if store.is_cancelled(request_id):
        # a copy that died mid-unit may have staged some of its files: finalize clears them
        progress = store.record_unit(request_id, unit_index, [], [], epoch=epoch, records=[p.file for p in pieces])
        self.advance(params, unit_index, progress)
        return {"request_id": request_id, "unit": unit_index, "status": "cancelled"}

    def stopped() -> bool:
        """Cancelled, or resumed or ended meanwhile: checked before the first slice and between
        slices (a hung task waking up must not create staging files again) and before whole
        files are published (a late task must not publish an older version)."""
        return store.is_cancelled(request_id) or store.live_params(request_id, epoch) is None

    # Claimed under this run of the node's worker: the janitor publishes the unit again at once
    # if that run is gone, or when its byte counter has not moved for stall_timeout.
    claim = incarnation.claim_of_this_process()
    if claim:
        store.claim_unit(request_id, unit_index, claim)
    options: dict[str, Any] = {
        "cancelled": stopped,
        "progress": lambda moved: store.report_inflight(request_id, unit_index, moved, claim),
        "rate": params.bwlimit / params.parallelism,  # --bwlimit: each lane's share (0: no limit)
    }
    if params.clustered:
        outcome = self.transfer_clustered(params, unit_index, pieces, options)
        if outcome is None:  # re-routed and retried, or failed as a whole
            return {"request_id": request_id, "unit": unit_index, "status": "rerouted"}
        result, via = outcome
    else:
        result, via = copy_unit(params, pieces, **options, may_publish=lambda: not stopped()), "local"
    if store.live_params(request_id, epoch) is None:
        # the request ended or was resumed while this ran (a hung worker waking up): its
        # counters belong to someone else now, and what it wrote may be strays
        if _wrote(result):
            self.leave_strays(params, pieces)
        return {"request_id": request_id, "unit": unit_index, "status": "stale"}
    store.mark_published(request_id, result.published, epoch=epoch)  # before the unit counts: finalize skips them
    progress = _record(store, request_id, unit_index, pieces, result, epoch)
    if not progress.first and _wrote(result):  # another copy recorded the unit: this one may have
        self.leave_strays(params, pieces)  # written after finalize published the winner's files
    if progress.first:
        store.log_event(request_id, "unit done", unit=unit_index, pieces=len(result.ok), failed=len(result.failed),
                        bytes=result.bytes_moved, worker=self.request.hostname, via=via)  # fmt: skip
    if params.clustered:  # after the unit counts: a route released first would hide a unit whose node
        self.registry.release(request_id, [unit_index])  # died before recording it from the janitor
    self.advance(params, unit_index, progress)
    return {
        "request_id": request_id,
        "unit": unit_index,
        "status": "cancelled" if result.cancelled else "done",
        "pieces_ok": len(result.ok),
        "pieces_failed": len(result.failed),
        "bytes": result.bytes_moved,
        "published": len(result.published),
        "via": via,
    }


def _endpoint_of(me: NodeConfig, key: str) -> NicEndpoint:
    iface = key.partition("/")[2]
    nic = next((n for n in me.data if n.interface == iface), me.data[0])
    return NicEndpoint(me.name, me.cluster, nic.interface, nic.address, 0, nic.network)


def _record(
    store: RequestStore, request_id: str, index: int, pieces: list[UnitPiece], result: UnitResult, epoch: int
) -> UnitProgress:
    """Record the unit: a file it published keeps nothing but its published bit (its bytes
    count as done); every other file keeps its record and its chunks' digests for finalize,
    which publishes it, fails it, or clears its staging file away (decision 0036)."""
    published = set(result.published)
    return store.record_unit(
        request_id, index, [p for p in result.ok if p.file_id not in published], result.failed, epoch=epoch,
        records=[p.file for p in pieces if p.file.file_id not in published],
        published_bytes=sum(p.length for p in result.ok if p.file_id in published),
    )  # fmt: skip
