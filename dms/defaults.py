"""The defaults of a request and of a deployment, each written once.

Why a module of its own: the request record (dms.model), the option table (dms.options),
workers.yml's `defaults` (dms.config) and the queue routing all start from these values,
and the lowest layer is the one place they can all import.
"""

from __future__ import annotations

__all__ = [
    "BROKER_TRANSPORT_OPTIONS",
    "CHUNK_SIZE",
    "CONTROL_QUEUE",
    "COPY_METHOD",
    "DATA_QUEUE",
    "PARALLELISM",
    "PUBLISH_RETRY_POLICY",
    "SCHEDULER",
    "VISIBILITY_TIMEOUT",
]

#: Transfer units in flight per request (its lanes).
PARALLELISM = 4
#: The largest piece of one file a transfer unit carries, and a unit's byte budget.
CHUNK_SIZE = 64 * 1024 * 1024
#: How bytes move on one node (decision 0003): falls back to read/write where refused.
COPY_METHOD = "copy_file_range"
#: The scheduler policy of a cross-cluster request when neither it nor workers.yml names one.
SCHEDULER = "least_loaded"
#: Where plan, walk and finalize tasks of a single-node request go.
CONTROL_QUEUE = "dms.control"
#: Where transfer units of a single-node request go.
DATA_QUEUE = "dms.data"

#: kombu's Redis visibility timeout: longer than any task's hard limit, and identical in every
#: process that shares the broker (a shorter one anywhere re-delivers running tasks).
VISIBILITY_TIMEOUT = 7200
#: kombu's Redis transport options, for workers and for the light client alike.
BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": VISIBILITY_TIMEOUT,
    "unacked_restore_interval": 10,
    "unacked_restore_throttle": 1,
    "socket_timeout": 30,
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "health_check_interval": 25,
}
#: How a publish rides out a Redis restart (about two minutes, like the state client's retries).
PUBLISH_RETRY_POLICY = {"max_retries": 60, "interval_start": 0, "interval_step": 0.5, "interval_max": 2}
