"""The Celery settings of the DMS app: the ones DMS's guarantees rest on, and the site's own.

Why not `config_from_object("celeryconfig")` alone: that imports the first module of that
name on `sys.path`, and the current directory comes first, so any `celeryconfig.py` where
a worker or a script happened to start (a Celery user has one) silently replaced DMS's
settings: late acks, prefetch 1, the visibility timeout, even the broker.

So the app is configured in three steps, none of which searches `sys.path`:
1. TUNABLE: defaults a site may change (time limits, events, result expiry, shutdown).
2. The site's settings file, loaded by path: DMS_CELERY_CONFIG if set (a file path), else
   the `celeryconfig.py` shipped beside the `dms` package (the repository's top level;
   site-packages after an install).
3. GUARANTEED: what delivery, security and recovery rely on (decision 0023). A site file
   that sets one of these to another value is told so in the log and overridden, and the
   broker and result backend always come from dms.settings (DMS_BROKER_URL, workers.yml's
   `control:`, or the embedded server).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from dms.defaults import BROKER_TRANSPORT_OPTIONS, CONTROL_QUEUE, PUBLISH_RETRY_POLICY, VISIBILITY_TIMEOUT
from dms.errors import ConfigError
from dms.route.queues import route_task
from dms.settings import resolve_endpoints

__all__ = ["GUARANTEED", "TUNABLE", "configure", "site_settings_path"]

log = logging.getLogger(__name__)

GUARANTEED: dict[str, Any] = {
    # JSON only: pickle on a shared broker is remote code execution.
    "task_serializer": "json",
    "result_serializer": "json",
    "event_serializer": "json",
    "accept_content": ["json"],
    "result_accept_content": ["json"],
    # Routing: control tasks on dms.control; each transfer names its data queue.
    "task_default_queue": CONTROL_QUEUE,
    "task_create_missing_queues": True,
    "task_routes": (route_task,),
    # Delivery: a crash re-delivers (tasks are idempotent), one message at a time.
    "task_acks_late": True,
    "worker_prefetch_multiplier": 1,
    "task_acks_on_failure": True,
    "task_acks_on_timeout": True,
    "task_reject_on_worker_lost": False,
    "task_retry_on_worker_lost": True,
    "worker_cancel_long_running_tasks_on_connection_loss": True,
    "worker_deduplicate_successful_tasks": True,
    # Longer than any task's hard limit, and identical in every process.
    "broker_transport_options": BROKER_TRANSPORT_OPTIONS,
    "result_backend_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT},
    "visibility_timeout": VISIBILITY_TIMEOUT,
    # Ride out a Redis restart of up to two minutes, like DMS's own state client
    # (DMS_REDIS_RETRY_SECONDS, 120 s): storing a result and publishing the next unit retry
    # with backoff instead of failing the request (DmsTask.publish adds its own 180 s).
    "result_backend_always_retry": True,
    "result_backend_max_retries": 150,  # at 0-2 s each (full jitter): about two minutes
    "task_publish_retry": True,
    "task_publish_retry_policy": PUBLISH_RETRY_POLICY,
    "broker_connection_retry_on_startup": True,
    "broker_connection_max_retries": None,
    "broker_channel_error_retry": True,
}

TUNABLE: dict[str, Any] = {
    "task_soft_time_limit": 3300,
    "task_time_limit": 3600,
    "result_expires": 7 * 24 * 3600,
    "result_backend_base_sleep_between_retries_ms": 500,
    # a worker storing a result when Redis went away sits in this loop, its consumer with it:
    # a Redis back is seen within 2 s (dms.worker.broker_recovery.RECONNECT_MAX likewise)
    "result_backend_max_sleep_between_retries_ms": 2000,
    # Events for Flower: plan and finalize send them; dms.transfer turns them off on its
    # task class (one per unit would flood Flower at scale).
    "worker_send_task_events": True,
    "task_send_sent_event": False,
    "task_track_started": False,
    "result_extended": False,
    "worker_soft_shutdown_timeout": 20.0,
    "worker_enable_soft_shutdown_on_idle": True,
    "worker_hijack_root_logger": False,
}


def site_settings_path() -> Path:
    """The shipped site settings file: `celeryconfig.py` beside the `dms` package."""
    return Path(__file__).resolve().parents[2] / "celeryconfig.py"


def _site_module() -> ModuleType | None:
    named = os.environ.get("DMS_CELERY_CONFIG", "")
    path = Path(named) if named else site_settings_path()
    if not path.is_file():
        if named:
            raise ConfigError(f"DMS_CELERY_CONFIG={named!r}: no such file (it names a settings file by its path)")
        return None
    spec = importlib.util.spec_from_file_location("dms_site_celeryconfig", path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py path always has a loader
        raise ConfigError(f"cannot load Celery settings from {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(f"Celery settings {path}: {type(exc).__name__}: {exc}") from exc
    return module


def _settings_of(module: ModuleType) -> dict[str, Any]:
    """The lowercase names of a settings module (Celery's own rule for config_from_object)."""
    return {k: v for k, v in vars(module).items() if k.islower() and not k.startswith("_")}


def configure(app: Any) -> None:
    """Configure `app` as the DMS app: TUNABLE, the site file, then GUARANTEED and the endpoints."""
    settings = dict(TUNABLE)
    module = _site_module()
    site = _settings_of(module) if module is not None else {}
    endpoints = resolve_endpoints()
    fixed = {**GUARANTEED, "broker_url": endpoints.broker_url, "result_backend": endpoints.result_backend}
    for key, value in site.items():
        if key not in fixed:
            settings[key] = value
        elif value != fixed[key]:
            why = "the endpoints come from DMS_BROKER_URL or workers.yml" if key.endswith(("_url", "backend")) else (
                f"DMS relies on {key}={fixed[key]!r}")  # fmt: skip
            log.warning("Celery setting %s of %s is ignored: %s", key, getattr(module, "__file__", module), why)
    limit = settings.get("task_time_limit")
    if isinstance(limit, int | float) and limit >= VISIBILITY_TIMEOUT:
        raise ConfigError(
            f"task_time_limit {limit} s must stay below the visibility timeout ({VISIBILITY_TIMEOUT} s): "
            "a task still running then would be delivered again beside itself"
        )
    app.conf.update(settings, **fixed)
