"""The one Celery app of DMS. `celery -A dms worker` finds it as `dms.app`."""

from __future__ import annotations

import os

from celery import Celery

__all__ = ["app"]

app = Celery("dms", include=["dms.tasks.plan", "dms.tasks.transfer", "dms.tasks.finalize"])
app.config_from_object(os.environ.get("DMS_CELERY_CONFIG", "celeryconfig"))
# Every DMS task shares bookkeeping and cached clients through DmsTask.
app.conf.task_cls = "dms.tasks.base:DmsTask"
