"""The defaults of a request and of a deployment, each written once.

Why a module of its own: the request record (dms.model), the option table (dms.options),
workers.yml's `defaults` (dms.config) and the queue routing all start from these values,
and the lowest layer is the one place they can all import.
"""

from __future__ import annotations

__all__ = ["CHUNK_SIZE", "CONTROL_QUEUE", "COPY_METHOD", "DATA_QUEUE", "PARALLELISM", "SCHEDULER"]

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
