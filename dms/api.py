"""The Python API: run a sync and get its result, or get a signature to chain.

    import dms
    result = dms.sync("/data/project", "/scratch/project", parallelism=8)
    chain(dms.sync_signature("/data/a", "/scratch/a"), my_task.s()).apply_async()

Options (all optional): request_id, parallelism, chunk_size (bytes or "64MiB"),
copy_method ("copy_file_range" or "readwrite"), fsync.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.canvas import Signature

from dms.client import new_request_id, submit, wait
from dms.embedded import EmbeddedService
from dms.model import make_params
from dms.routing import CONTROL_QUEUE
from dms.settings import resolve_endpoints
from dms.state import RequestStore, connect

__all__ = ["sync", "sync_signature"]


def sync_signature(source: str, destination: str, **options: Any) -> Signature:
    """A Celery signature of the `dms.sync` task; chain it with your own tasks.

    The next task in the chain receives the sync's summary (a dict with
    request_id, state, error, files_*, bytes_*, seconds) whatever the final
    state: check summary["state"]. Your chain is stored once and started by
    dms.finalize; it is never copied into the transfer messages.
    """
    from dms.application import app

    make_params(source, destination, request_id="validate", **options)  # fail here, not in a worker
    return app.signature("dms.sync", args=(source, destination), kwargs=options, queue=CONTROL_QUEUE)


def sync(
    source: str, destination: str, *, timeout: float | None = None, config: str | None = None, **options: Any
) -> dict[str, Any]:
    """Run a sync to the end and return its summary (raises PathError etc. before starting).

    Uses the configured DMS service (DMS_BROKER_URL / DMS_CONFIG / `config`), or the
    embedded mode when none is configured, like `dms-submit sync --wait`.
    """
    from dms.tasks.finalize import summarize

    params = make_params(
        os.path.abspath(source),
        os.path.abspath(destination),
        request_id=options.pop("request_id", None) or new_request_id(),
        **options,
    )
    endpoints = resolve_endpoints(config)
    if endpoints.configured:
        from dms.application import app

        app.conf.broker_url = endpoints.broker_url
        app.conf.result_backend = endpoints.result_backend
        store = RequestStore(connect(endpoints.state_url))
        submit(app, store, params)
        return summarize(params.request_id, wait(store, params.request_id, timeout=timeout))
    with EmbeddedService(worker_concurrency=params.parallelism) as service:
        private = Celery("dms-embedded-client")
        private.config_from_object("celeryconfig")
        private.conf.broker_url = service.broker_url
        store = RequestStore(connect(service.state_url))
        submit(private, store, params)
        record = wait(store, params.request_id, timeout=timeout, alive=service.check_worker)
        private.pool.force_close_all()
        return summarize(params.request_id, record)
