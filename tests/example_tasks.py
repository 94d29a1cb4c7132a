"""A user's own Celery task, as in docs/api.md; test workers load it with `-I tests.example_tasks`."""

from __future__ import annotations

from typing import Any

from dms.worker.app import app


@app.task(name="example.my_task")  # type: ignore[untyped-decorator]
def my_task(summary: dict[str, Any]) -> dict[str, Any]:
    """Receives the sync's summary; returns what it saw, so the test can check it."""
    return {"seen_request": summary["request_id"], "seen_state": summary["state"], "files": summary["files_done"]}
