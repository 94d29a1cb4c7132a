"""Celery settings for DMS. Flat lowercase settings only; URLs come from dms.settings.

The values follow decision 0023 (F11) and are explained in docs/architecture.md
("Celery configuration"). Override the broker and result
backend with DMS_BROKER_URL / DMS_RESULT_BACKEND (or DMS_CONFIG's `control:`).
"""

from dms.route.queues import CONTROL_QUEUE, route_task
from dms.settings import resolve_endpoints

_endpoints = resolve_endpoints()
broker_url = _endpoints.broker_url
result_backend = _endpoints.result_backend

# JSON only: pickle on a shared broker is remote code execution.
task_serializer = "json"
result_serializer = "json"
event_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# Routing: control tasks on dms.control; each transfer names its data queue.
task_default_queue = CONTROL_QUEUE
task_create_missing_queues = True
task_routes = (route_task,)

# Delivery: a crash re-delivers (tasks are idempotent), one message at a time.
task_acks_late = True
worker_prefetch_multiplier = 1
task_acks_on_failure = True
task_acks_on_timeout = True
task_reject_on_worker_lost = False
task_retry_on_worker_lost = True
worker_cancel_long_running_tasks_on_connection_loss = True
worker_deduplicate_successful_tasks = True
task_soft_time_limit = 3300
task_time_limit = 3600

# Longer than any task's hard limit, and identical in every process.
_VISIBILITY_TIMEOUT = 7200
broker_transport_options = {
    "visibility_timeout": _VISIBILITY_TIMEOUT,
    "unacked_restore_interval": 10,
    "unacked_restore_throttle": 1,
    "socket_timeout": 30,
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "health_check_interval": 25,
}
result_backend_transport_options = {"visibility_timeout": _VISIBILITY_TIMEOUT}
visibility_timeout = _VISIBILITY_TIMEOUT

result_expires = 7 * 24 * 3600
# Ride out a Redis restart of up to two minutes, like DMS's own state client
# (DMS_REDIS_RETRY_SECONDS, 120 s): storing a result and publishing the next unit retry
# with backoff instead of failing the request (DmsTask.publish adds its own 180 s around
# errors Celery does not retry; docs/operations.md, "What survives what").
result_backend_always_retry = True
result_backend_max_retries = 45
result_backend_base_sleep_between_retries_ms = 500
result_backend_max_sleep_between_retries_ms = 4000
task_publish_retry = True
task_publish_retry_policy = {"max_retries": 60, "interval_start": 0, "interval_step": 0.5, "interval_max": 2}

broker_connection_retry_on_startup = True
broker_connection_max_retries = None
broker_channel_error_retry = True

# Events for Flower: plan and finalize send them; dms.transfer turns them off
# on its task class (one per unit would flood Flower at scale).
worker_send_task_events = True
task_send_sent_event = False
task_track_started = False
result_extended = False

worker_soft_shutdown_timeout = 20.0
worker_enable_soft_shutdown_on_idle = True
worker_hijack_root_logger = False
