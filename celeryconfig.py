"""The site's Celery settings for DMS workers: edit what suits the site.

DMS loads this file by its path (the one beside the installed `dms` package, or the file
DMS_CELERY_CONFIG names), never as "whatever `celeryconfig` comes first on sys.path", so a
user's own celeryconfig.py in a working directory changes nothing. Flat lowercase Celery
settings only. What DMS's delivery guarantees rest on (JSON only, late acks, prefetch 1,
the visibility timeout, the retry policies, routing: `dms.worker.celery_settings.GUARANTEED`,
decision 0023) is not set here and cannot be changed here: a value set anyway is logged and
ignored. The broker and result backend come from DMS_BROKER_URL / DMS_RESULT_BACKEND or
workers.yml's `control:` section. The values below are DMS's defaults, written out.
"""

# A task past its soft limit gets SoftTimeLimitExceeded, past the hard one it is killed;
# the hard limit must stay below the visibility timeout (7,200 s).
task_soft_time_limit = 3300
task_time_limit = 3600

# How long Celery keeps plan and finalize results (and user chains' results) in Redis.
result_expires = 7 * 24 * 3600

# Events for Flower: plan and finalize send them; dms.transfer turns them off on its task
# class (one per unit would flood Flower at scale).
worker_send_task_events = True
task_send_sent_event = False
task_track_started = False
result_extended = False

# A warm shutdown lets running tasks finish for this long before they are put back.
worker_soft_shutdown_timeout = 20.0
worker_enable_soft_shutdown_on_idle = True
worker_hijack_root_logger = False
