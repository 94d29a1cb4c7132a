"""Queue names and the task router: control tasks on one queue, transfers on data queues.

Queue name == routing key everywhere, so routes read plainly in Flower and in
Redis (`LLEN dms.data`). A transfer's data queue is chosen when the plan is
made and recorded in the request, so every message of a request goes where
its planner decided, whichever process publishes it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CONTROL_QUEUE", "DATA_QUEUE", "route_task", "worker_queues"]

CONTROL_QUEUE = "dms.control"
DATA_QUEUE = "dms.data"

_CONTROL_TASKS = frozenset({"dms.plan", "dms.finalize"})


def route_task(name: str, args: Any, kwargs: Any, options: dict[str, Any], task: Any = None, **kw: Any) -> Any:
    """Default routes; a `queue=` given at publish time always wins (Celery merges it last)."""
    if name in _CONTROL_TASKS:
        return {"queue": CONTROL_QUEUE}
    if name == "dms.transfer":
        return {"queue": DATA_QUEUE}
    return None


def worker_queues(control_queue: str = CONTROL_QUEUE, data_queue: str = DATA_QUEUE) -> str:
    """The -Q argument of a single-node worker that serves both planes."""
    return f"{control_queue},{data_queue}"
