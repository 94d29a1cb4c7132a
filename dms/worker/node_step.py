"""The worker bootstep that makes a Celery worker a DMS node: `--dms-node NAME`.

With it, `celery -A dms worker --dms-node a1` (or `dms-worker a1`, which adds
the queue list and concurrency from workers.yml) consumes the node's queues,
runs the data receiver on every data-plane address, and announces itself in
Redis with a heartbeat that carries its cluster, NICs, free space and load.
The heartbeat runs on the worker's own event-loop timer in the main process,
so a hung worker (SIGSTOP, a stuck main loop) stops beating and is no longer
scheduled; a clean stop withdraws it at once. After each heartbeat, the
janitor (dms.worker.janitor) re-dispatches the units of nodes that went silent.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, ClassVar

from celery import bootsteps

from dms.config import Endpoint, NodeConfig
from dms.route.nics import interface_state, misrouted_peers, peers_of
from dms.route.queues import node_queues
from dms.settings import active_config, resolve_endpoints
from dms.state.nodes import NicEndpoint, NodeStatus, Registry
from dms.state.requests import RequestStore, connect
from dms.worker import incarnation
from dms.worker.janitor import sweep as sweep_units
from dms.worker.link_watch import LinkWatcher

__all__ = ["NodeStep"]

log = logging.getLogger(__name__)

#: How long the receiver may take to bind its addresses before the worker gives up.
RECEIVER_START_TIMEOUT = 20.0
#: Seconds between route lookups of one NIC (one `ip route get` per peer address).
ROUTE_CHECK_EVERY = 4.0


class NodeStep(bootsteps.StartStopStep):  # type: ignore[misc]
    requires: ClassVar[set[str]] = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, dms_node: str | None = None, **kwargs: Any) -> None:
        self.enabled = bool(dms_node)
        self.node: NodeConfig | None = None
        self.receiver: subprocess.Popen[str] | None = None
        self.tref: Any = None
        self.registry: Registry | None = None
        self.store: RequestStore | None = None
        self.app: Any = None
        self.nic_states: dict[str, str] = {}
        self.route_checks: dict[str, tuple[float, bool]] = {}
        self.worker: Any = None
        self.incarnation = ""
        self.beating = threading.Lock()  # the timer's beats and the link watcher's
        self.stopping = False
        self.links: LinkWatcher | None = None
        self.metrics: Any = None
        if not dms_node:
            return
        # Set before the pool forks, so every pool process knows its node and this run of it.
        os.environ["DMS_NODE"] = dms_node
        self.incarnation = incarnation.begin(dms_node)
        config = active_config()
        self.node = config.node(dms_node)
        self.interval = config.defaults.heartbeat_interval
        self.ttl = config.defaults.heartbeat_ttl
        self.stall_timeout = config.defaults.stall_timeout
        queues = worker.app.amqp.queues
        for queue in node_queues(self.node):
            queues.select_add(queue)

    def start(self, worker: Any) -> None:
        assert self.node is not None
        client = connect(resolve_endpoints().state_url)
        self.registry = Registry(client)
        self.store = RequestStore(client)
        self.app = worker.app
        self.worker = worker
        self.receiver = self._start_receiver()
        self.beat()
        self.tref = worker.timer.call_repeatedly(self.interval, self.beat)
        self.links = LinkWatcher(lambda: self.beat(sweep=False))  # a NIC down is announced at once
        self.links.start()
        if self.node.metrics_port:
            self.metrics = self._serve_metrics(self.node)
        log.info("DMS node %s (cluster %s) is up: queues %s", self.node.name, self.node.cluster,
                 ", ".join(q.name for q in node_queues(self.node)))  # fmt: skip

    def stop(self, worker: Any) -> None:
        with self.beating:
            self.stopping = True  # a beat that was waiting for the lock announces nothing now
        if self.links is not None:
            self.links.stop()
            self.links = None
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        if self.registry is not None and self.node is not None:
            try:
                self.registry.withdraw(self.node.name)
            except Exception as exc:  # Redis gone: the TTL withdraws us anyway
                log.warning("could not withdraw node %s: %s", self.node.name, exc)
        self._stop_receiver()
        if self.metrics is not None:
            self.metrics.shutdown()
            self.metrics = None

    def _serve_metrics(self, node: NodeConfig) -> Any:
        """The node's Prometheus metrics on its control address; a port in use is logged, and
        the node runs on without them (a scrape target down is what Prometheus reports)."""
        from dms.worker.metrics import serve_metrics

        address = node.control.address if node.control is not None else "0.0.0.0"
        try:
            return serve_metrics(self, node.metrics_port, address)
        except OSError as exc:
            log.error("node %s: cannot serve metrics on %s:%d: %s", node.name, address, node.metrics_port, exc)
            return None

    def beat(self, sweep: bool = True) -> None:
        """One heartbeat, then (`sweep`) the janitor's turn; never raises (a Redis blip must
        not kill the worker's loop). Called by the worker's timer and by the link watcher."""
        with self.beating:
            beaten = not self.stopping and self._beat()
        if beaten and sweep and self.store is not None and self.registry is not None and self.app is not None:
            sweep_units(self.store, self.registry, self.app.tasks["dms.transfer"], self.stall_timeout)

    def _beat(self) -> bool:
        assert self.node is not None and self.registry is not None
        node = self.node
        alive = self.receiver is not None and self.receiver.poll() is None
        if self.receiver is not None and not alive:
            log.error("the data receiver of node %s exited (%s); restarting it", node.name, self.receiver.returncode)
            try:
                self.receiver = self._start_receiver()
                alive = True
            except RuntimeError as exc:
                log.error("%s", exc)
        status = NodeStatus(
            node=node.name,
            cluster=node.cluster,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            nics=tuple(
                NicEndpoint(node.name, node.cluster, n.interface, n.address, node.port, n.network)
                for n in self._usable_nics()
            ),
            receiver=alive,
            free_bytes=_free_bytes(node.roots),
            load=tuple(os.getloadavg()),
            concurrency=node.concurrency,
            time=time.time(),
            incarnation=self.incarnation,
            pool=self._pool_pids(),
        )
        try:
            self.registry.heartbeat(status, self.ttl)
        except Exception as exc:
            log.warning("heartbeat of node %s failed: %s", node.name, exc)
            return False
        return True

    def _pool_pids(self) -> tuple[int, ...]:
        """The pids of the prefork pool's processes now (none for a solo or threads pool)."""
        try:
            return tuple(sorted(int(p) for p in self.worker.pool.info.get("processes", ())))
        except Exception:  # the pool is starting or stopping
            return ()

    def _usable_nics(self) -> list[Endpoint]:
        """The data NICs that are not down; a change is logged (and is an event on the node)."""
        assert self.node is not None
        states = {n.interface: interface_state(n.interface) for n in self.node.data}
        for iface, state in states.items():
            before = self.nic_states.get(iface)
            if before is None and state == "unknown":
                log.warning("node %s: no interface %r here; its link state is not watched", self.node.name, iface)
            elif before is not None and before != state:
                log.warning("node %s: data NIC %s is now %s", self.node.name, iface, state)
        self.nic_states = states
        up = [n for n in self.node.data if states[n.interface] != "down"]
        return [n for n in up if not self._degraded(n, states[n.interface])]

    def _degraded(self, nic: Endpoint, state: str) -> bool:
        """A NIC that is up but whose traffic to some peer would leave through another device
        (dms.route.nics.misrouted_peers): announced as not usable until its route is back.
        Looked up every ROUTE_CHECK_EVERY seconds per NIC; a change is logged."""
        if state != "up":  # unknown: not a device here (a label); its routes cannot be watched either
            return False
        now = time.monotonic()
        cached = self.route_checks.get(nic.interface)
        if cached is not None and now - cached[0] < ROUTE_CHECK_EVERY:
            return cached[1]
        assert self.node is not None
        wrong = misrouted_peers(nic.interface, nic.address, peers_of(nic, self.node.cluster, active_config()))
        degraded = bool(wrong)
        if cached is None or cached[1] != degraded:
            if degraded:
                log.warning("node %s: data NIC %s is up but traffic from %s to %s would leave through another "
                            "device (its policy route is gone?); it gets no work until that is fixed",
                            self.node.name if self.node else "?", nic.interface, nic.address,
                            ", ".join(wrong))  # fmt: skip
            elif cached is not None:
                log.warning("node %s: data NIC %s routes to its peers again", self.node.name if self.node else "?",
                            nic.interface)  # fmt: skip
        self.route_checks[nic.interface] = (now, degraded)
        return degraded

    def _start_receiver(self) -> subprocess.Popen[str]:
        assert self.node is not None
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "dms.worker.receiver", "--node", self.node.name, "--parent", str(os.getpid())),
                *("--max-connections", str(max(64, 4 * self.node.concurrency))),
            ],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a Ctrl-C to the worker's group is the worker's to handle
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + RECEIVER_START_TIMEOUT
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline().strip()
            if line or proc.poll() is not None:
                break
        if not line.startswith("READY"):
            proc.kill()
            proc.wait()
            raise RuntimeError(f"the data receiver of node {self.node.name} did not start: {line or 'no answer'}")
        log.info("data receiver of node %s: %s", self.node.name, line[len("READY ") :])
        return proc

    def _stop_receiver(self) -> None:
        proc, self.receiver = self.receiver, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _free_bytes(roots: tuple[str, ...]) -> dict[str, int]:
    free = {}
    for root in roots:
        try:
            st = os.statvfs(root)
            free[root] = st.f_bavail * st.f_frsize
        except OSError:
            free[root] = -1
    return free
