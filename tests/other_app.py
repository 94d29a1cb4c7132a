"""A Celery app that is not DMS's, as a user's own: its own broker (another Redis database),
its own default queue, its own worker process (tests/integration/test_api.py)."""

from __future__ import annotations

import json
import os
from typing import Any

from celery import Celery

app = Celery("other", broker=os.environ.get("OTHER_BROKER_URL", "memory://"), set_as_current=False)
app.conf.task_default_queue = "other.q"
app.conf.task_serializer = app.conf.result_serializer = "json"


@app.task(name="other.record")  # type: ignore[untyped-decorator]
def record(summary: dict[str, Any], path: str) -> None:
    """Writes what it received where the test looks, then passes it on."""
    with open(path + ".tmp", "w") as f:
        json.dump(summary, f)
    os.rename(path + ".tmp", path)


@app.task(name="other.then")  # type: ignore[untyped-decorator]
def then(_: Any, path: str) -> None:
    """The chain's step after record: the caller's worker carries the rest of the chain."""
    with open(path, "w") as f:
        f.write("then ran")
