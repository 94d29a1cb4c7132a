"""The one Celery app of DMS. `celery -A dms worker` finds it as `dms.app`."""

from __future__ import annotations

import gc

import click
from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, worker_process_init

from dms.worker.celery_settings import configure
from dms.worker.logs import json_logs_wanted, use_json_logs

__all__ = ["app"]

app = Celery("dms", include=["dms.tasks.plan", "dms.tasks.transfer", "dms.tasks.finalize"])
configure(app)  # DMS's guarantees, the site's celeryconfig.py loaded by path, the endpoints
# Every DMS task shares bookkeeping and cached clients through DmsTask.
app.conf.task_cls = "dms.tasks.base:DmsTask"

if json_logs_wanted():  # DMS_LOG_FORMAT=json: one JSON object per line (dms.worker.logs)
    after_setup_logger.connect(use_json_logs, weak=False)
    after_setup_task_logger.connect(use_json_logs, weak=False)

# `--dms-node NAME` makes a worker a node of workers.yml (see dms.worker.node_step).
app.user_options["worker"].add(
    click.Option(("--dms-node",), default=None, help="DMS: serve this node of workers.yml (DMS_CONFIG).")
)


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _collect_garbage_rarely(**_: object) -> None:
    """A pool process allocates a record object per file it moves or walks, and almost none of
    them are cyclic, so CPython's default (a young collection every 700 allocations) spends
    CPU on nothing (decision 0024). Move what the worker imported out of the collector's
    view and collect the young generation every 50,000 allocations."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _add_steps() -> None:
    from dms.state.broker import tolerate_a_dead_connection
    from dms.worker.broker_recovery import RestoreAfterBrokerRestart
    from dms.worker.node_step import NodeStep
    from dms.worker.standstill import StandStillWatch

    tolerate_a_dead_connection()

    app.steps["worker"].add(NodeStep)
    app.steps["worker"].add(StandStillWatch)
    app.steps["consumer"].add(RestoreAfterBrokerRestart)


_add_steps()
