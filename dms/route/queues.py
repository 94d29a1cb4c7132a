"""Queue names and the task router.

Queue name == routing key everywhere, so routes read plainly in Flower and in
Redis (`LLEN dms.nic.b1.ib0`). Two layouts:

- single node (embedded, or no `clusters:` configured): `dms.control` for plan
  and finalize, `dms.data` for transfers;
- clusters: `dms.cluster.<cluster>` for plan (source cluster) and finalize
  (destination cluster), consumed by every node of the cluster;
  `dms.node.<node>` for work that must run on one node; and one
  `dms.nic.<node>.<iface>` per data-plane NIC, where the scheduler sends each
  transfer unit. A worker always consumes an explicit list of queues
  (decision 0023, F1: never rely on "all known queues").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dms import defaults as default
from dms.config import NodeConfig

if TYPE_CHECKING:
    from kombu import Queue  # type: ignore[attr-defined]

__all__ = [
    "CONTROL_QUEUE",
    "DATA_QUEUE",
    "cluster_queue",
    "nic_of_queue",
    "nic_queue",
    "node_queue",
    "node_queues",
    "route_task",
    "sync_queue",
    "worker_queues",
]

CONTROL_QUEUE = default.CONTROL_QUEUE
DATA_QUEUE = default.DATA_QUEUE

_CONTROL_TASKS = frozenset({"dms.plan", "dms.walk", "dms.finalize"})


def route_task(name: str, args: Any, kwargs: Any, options: dict[str, Any], task: Any = None, **kw: Any) -> Any:
    """Default routes; a `queue=` given at publish time always wins (Celery merges it last).

    The router runs in the publishing process, Flower's included (`celery -A dms flower`):
    so a `dms.sync` posted to Flower's HTTP API with cluster arguments goes to the source
    cluster's queue, where its plan must run, as dms.sync_signature() sends it."""
    if name == "dms.sync":
        return {"queue": sync_queue(kwargs if isinstance(kwargs, dict) else {})}
    if name in _CONTROL_TASKS:
        return {"queue": CONTROL_QUEUE}
    if name == "dms.transfer":
        return {"queue": DATA_QUEUE}
    return None


def sync_queue(options: dict[str, Any]) -> str:
    """Where a `dms.sync` with these keyword arguments plans: the source cluster's queue
    (`source_cluster`, or the A of `direction="A_TO_B"`), else its `control_queue`, else
    dms.control. Malformed values route as if absent: the task then fails, saying why."""
    source, direction = options.get("source_cluster"), options.get("direction")
    if not source and isinstance(direction, str) and "_TO_" in direction:
        source = direction.partition("_TO_")[0]
    if isinstance(source, str) and source:
        return cluster_queue(source)
    control = options.get("control_queue")
    return control if isinstance(control, str) and control else CONTROL_QUEUE


def worker_queues(control_queue: str = CONTROL_QUEUE, data_queue: str = DATA_QUEUE) -> str:
    """The -Q argument of a single-node worker that serves both planes."""
    return f"{control_queue},{data_queue}"


def cluster_queue(cluster: str) -> str:
    return f"dms.cluster.{cluster}"


def node_queue(node: str) -> str:
    return f"dms.node.{node}"


def nic_queue(node: str, interface: str) -> str:
    return f"dms.nic.{node}.{interface}"


def nic_of_queue(queue: str | None, node: str) -> str | None:
    """The interface named by a NIC queue of `node` (None for any other queue)."""
    prefix = f"dms.nic.{node}."
    return queue[len(prefix) :] if queue and queue.startswith(prefix) else None


def node_queues(node: NodeConfig) -> list[Queue]:
    """Every queue a node's worker consumes, declared once as kombu Queues (direct, name == key)."""
    from kombu import Queue  # type: ignore[attr-defined]  # here: a client only needs the names

    names = [cluster_queue(node.cluster), node_queue(node.name)]
    names += [nic_queue(node.name, nic.interface) for nic in node.data]
    return [Queue(name, routing_key=name) for name in names]  # type: ignore[no-untyped-call]
