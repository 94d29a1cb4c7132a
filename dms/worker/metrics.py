"""DMS's own Prometheus metrics, served by a node worker on `metrics_port` (workers.yml).

Flower's `/metrics` knows Celery tasks; an operator of a data mover asks about NICs, bytes,
units in flight, nodes and requests. Every value is read when Prometheus scrapes (a custom
collector, prometheus_client), from what the node already has, so nothing is counted twice
and the pool processes need no shared counters:
- per NIC, the kernel's byte counters and the state the node announces;
- this node's units running and tasks accepted (Celery's own state in the main process);
- free bytes of each root, and whether the data receiver runs;
- and from Redis, deployment-wide: requests by state (the newest 1,000), each node's
  heartbeat age, and how long a PING takes.

Served by prometheus_client's HTTP server on a thread of the worker's main process,
on the node's control address (all addresses when the node has none).
docs/grafana-dashboard.json charts these names; a test scrapes a running node and checks
that every name the dashboard uses is served.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["NodeCollector", "serve_metrics"]

log = logging.getLogger(__name__)

#: How many of the newest requests the requests-by-state gauge counts.
REQUESTS_COUNTED = 1000
STATES = ("PENDING", "PLANNING", "TRANSFERRING", "FINALIZING", "SUCCEEDED", "FAILED", "CANCELLED")


def _nic_counter(interface: str, name: str) -> int | None:
    try:
        with open(f"/sys/class/net/{interface}/statistics/{name}") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


class NodeCollector(Collector):
    """The metrics of one node worker, read at each scrape from its NodeStep."""

    def __init__(self, step: Any) -> None:  # a dms.worker.node_step.NodeStep (which imports this)
        self.step = step

    def collect(self) -> Iterator[Metric]:
        step, node = self.step, self.step.node
        if node is None:
            return
        labels = {"node": node.name, "cluster": node.cluster}
        info = GaugeMetricFamily("dms_node_info", "This node worker runs (1), with its cluster and incarnation.",
                                 labels=["node", "cluster", "incarnation"])  # fmt: skip
        info.add_metric([node.name, node.cluster, step.incarnation], 1)
        yield info
        yield from self._nics(node.name)
        yield from self._units(labels)
        receiver = GaugeMetricFamily("dms_receiver_up", "The data receiver process runs.", labels=["node"])
        receiver.add_metric([node.name], 1 if step.receiver is not None and step.receiver.poll() is None else 0)
        yield receiver
        free = GaugeMetricFamily("dms_root_free_bytes", "Free bytes of each root.", labels=["node", "root"])
        for root in node.roots:
            try:
                st = os.statvfs(root)
                free.add_metric([node.name, root], st.f_bavail * st.f_frsize)
            except OSError:
                continue
        yield free
        yield from self._deployment()

    def _nics(self, node: str) -> Iterator[Metric]:
        assert self.step.node is not None
        sent = CounterMetricFamily("dms_nic_transmit_bytes", "Bytes the kernel sent on each data NIC.",
                                   labels=["node", "nic"])  # fmt: skip
        received = CounterMetricFamily("dms_nic_receive_bytes", "Bytes the kernel received on each data NIC.",
                                       labels=["node", "nic"])  # fmt: skip
        state = GaugeMetricFamily("dms_nic_state", "Each data NIC's state as the node announces it (1 for the "
                                  "current one: up, down, degraded or unknown).",
                                  labels=["node", "nic", "state"])  # fmt: skip
        degraded = {iface for iface, (_, bad) in self.step.route_checks.items() if bad}
        for nic in self.step.node.data:
            tx, rx = _nic_counter(nic.interface, "tx_bytes"), _nic_counter(nic.interface, "rx_bytes")
            if tx is not None and rx is not None:
                sent.add_metric([node, nic.interface], tx)
                received.add_metric([node, nic.interface], rx)
            now = self.step.nic_states.get(nic.interface, "unknown")
            now = "degraded" if now == "up" and nic.interface in degraded else now
            for name in ("up", "down", "degraded", "unknown"):
                state.add_metric([node, nic.interface, name], 1 if name == now else 0)
        yield from (sent, received, state)

    def _units(self, labels: dict[str, str]) -> Iterator[Metric]:
        from celery.worker import state as worker_state

        running = GaugeMetricFamily("dms_units_running", "Transfer units this node runs now.", labels=["node"])
        running.add_metric([labels["node"]], sum(1 for r in worker_state.active_requests if r.name == "dms.transfer"))
        yield running
        accepted = CounterMetricFamily("dms_tasks_accepted", "Tasks this run of the node worker started, by name.",
                                       labels=["node", "task"])  # fmt: skip
        for name, count in sorted(worker_state.total_count.items()):
            accepted.add_metric([labels["node"], name], count)
        yield accepted

    def _deployment(self) -> Iterator[Metric]:
        """What Redis knows about every node and request; `dms_redis_up` 0 if it does not answer."""
        step = self.step
        up = GaugeMetricFamily("dms_redis_up", "The DMS Redis answered this scrape.")
        if step.registry is None or step.store is None:
            up.add_metric([], 0)
            yield up
            return
        try:
            ping = step.registry.ping_seconds()
            statuses = step.registry.live_nodes(fresh=True)
            known = step.registry.known_nodes()
            requests = step.store.list_requests(limit=REQUESTS_COUNTED)
        except Exception as exc:  # a scrape must answer even when Redis does not
            log.debug("metrics: Redis did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        latency = GaugeMetricFamily("dms_redis_ping_seconds", "How long a PING of the DMS Redis took.")
        latency.add_metric([], ping)
        yield latency
        now = time.time()
        live = GaugeMetricFamily("dms_node_live", "Each known node beats (1) or is silent (0).", labels=["node"])
        age = GaugeMetricFamily("dms_node_heartbeat_age_seconds", "Seconds since each live node's last heartbeat.",
                                labels=["node"])  # fmt: skip
        beating = {s.node: s for s in statuses}
        for name in sorted(known | set(beating)):
            live.add_metric([name], 1 if name in beating else 0)
            if name in beating:
                age.add_metric([name], max(0.0, now - beating[name].time))
        yield from (live, age)
        counts = dict.fromkeys(STATES, 0)
        for info in requests:
            counts[info["state"]] = counts.get(info["state"], 0) + 1
        by_state = GaugeMetricFamily("dms_requests", f"Requests by state, of the newest {REQUESTS_COUNTED}.",
                                     labels=["state"])  # fmt: skip
        for name, count in counts.items():
            by_state.add_metric([name], count)
        yield by_state


def serve_metrics(step: Any, port: int, address: str) -> Any:
    """Start the HTTP server of the node's metrics (a daemon thread); the server, to stop."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(step))
    server, _thread = start_http_server(port, addr=address, registry=registry)
    log.info("DMS metrics of node %s on http://%s:%d/metrics", step.node.name if step.node else "?", address, port)
    return server
