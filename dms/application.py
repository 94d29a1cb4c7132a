"""The one Celery app of DMS. `celery -A dms worker` finds it as `dms.app`."""

from __future__ import annotations

import os

import click
from celery import Celery

__all__ = ["app"]

app = Celery("dms", include=["dms.tasks.plan", "dms.tasks.transfer", "dms.tasks.finalize"])
app.config_from_object(os.environ.get("DMS_CELERY_CONFIG", "celeryconfig"))
# Every DMS task shares bookkeeping and cached clients through DmsTask.
app.conf.task_cls = "dms.tasks.base:DmsTask"

# `--dms-node NAME` makes a worker a node of workers.yml (see dms.worker_steps).
app.user_options["worker"].add(
    click.Option(("--dms-node",), default=None, help="DMS: serve this node of workers.yml (DMS_CONFIG).")
)


def _add_steps() -> None:
    from dms.broker_recovery import RestoreAfterBrokerRestart, tolerate_restore_on_a_dead_connection
    from dms.worker_steps import NodeStep

    tolerate_restore_on_a_dead_connection()

    app.steps["worker"].add(NodeStep)
    app.steps["consumer"].add(RestoreAfterBrokerRestart)


_add_steps()
