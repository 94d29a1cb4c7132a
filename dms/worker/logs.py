"""One JSON object per log line (DMS_LOG_FORMAT=json), for journald, Loki or ELK.

Why a formatter of its own: Celery's formatters write free text, which a log pipeline can
only take apart with a regular expression per message. With DMS_LOG_FORMAT=json every
handler Celery sets up (the worker's and the task logger's) writes objects with the same
keys: time (UTC, ISO 8601), level, logger, message, pid, process, and, inside a task,
task_id and task_name; exc when there is a traceback. Start the worker with `celery -q`
(dms-worker does) so Celery's banner is not printed among them.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

__all__ = ["JsonFormatter", "json_logs_wanted", "use_json_logs"]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
            "process": record.processName,
        }
        from celery._state import get_current_task  # the task this pool process runs, if any

        task = get_current_task()
        if task is not None and task.request.id:
            out["task_id"], out["task_name"] = task.request.id, task.name
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def json_logs_wanted() -> bool:
    return os.environ.get("DMS_LOG_FORMAT", "text").lower() == "json"


def use_json_logs(logger: logging.Logger, **_: object) -> None:
    """Celery's after_setup_logger / after_setup_task_logger receiver."""
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())
