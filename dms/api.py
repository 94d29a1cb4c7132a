"""The Python API: run a sync and get its result, or get a signature to chain.

    import dms
    result = dms.sync("/data/project", "/scratch/project", parallelism=8)
    chain(dms.sync_signature("/data/a", "/scratch/a"), my_task.s()).apply_async()

Options (all optional): request_id and the request options of dms.options.OPTIONS, by
their Python names (parallelism, chunk_size as bytes or "64MiB", delete, include, ...);
between clusters source_cluster + destination_cluster (or direction="A_TO_B").
"""

from __future__ import annotations

from typing import Any

from celery.canvas import Signature

from dms.chains import SyncSignature
from dms.client.connect import control_plane
from dms.client.submit import cancel, check_request_paths, submit, wait
from dms.config import load_config
from dms.errors import SyncTimeout
from dms.fs.paths import validate_pair
from dms.request import make_params, summarize
from dms.settings import active_config

__all__ = ["sync", "sync_signature"]


def sync_signature(source: str, destination: str, **options: Any) -> Signature:
    """A Celery signature of the `dms.sync` task; chain it with your own tasks.

    The next task in the chain receives the sync's summary (a dict with
    request_id, state, error, files_*, bytes_*, seconds) whatever the final
    state: check summary["state"]. Your chain is stored once and started by
    dms.finalize; it is never copied into the transfer messages. A task of your own
    Celery app goes to its app's queue on its app's broker (dms.chains): run your
    worker as usual; DMS's workers must be able to reach that broker.
    """
    from dms.worker.app import app

    params = make_params(source, destination, **options)  # fail here, not in a worker
    if not params.clustered:  # across clusters the roots are checked where the plan runs
        validate_pair(params.source, params.destination)  # as dms.sync() and dms-submit check them
    # dms.sync plans, so it goes where plans go: the request's control queue (across clusters,
    # dms.cluster.<source>); absolute paths: a relative one would be read against the
    # worker's current directory. The worker applies its workers.yml's defaults.
    # The tasks chained after it keep their own app's queue and broker (dms.chains).
    return SyncSignature("dms.sync", args=(params.source, params.destination), kwargs=options,
                         options={"queue": params.control_queue}, subtask_type="dms_sync", app=app)  # fmt: skip


#: How long a cancel on timeout waits for the request to end.
CANCEL_WAIT_SECONDS = 120.0


def sync(
    source: str,
    destination: str,
    *,
    timeout: float | None = None,
    on_timeout: str = "leave",
    config: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run a sync to the end and return its summary (raises PathError etc. before starting).

    Uses the configured DMS service (DMS_BROKER_URL / DMS_CONFIG / `config`), or the
    embedded mode when none is configured, like `dms-submit sync --wait`.

    `timeout` (seconds): raise SyncTimeout if the request has not ended by then. With
    on_timeout="leave" (the default) a request in the service keeps running (follow it with
    `dms-submit watch`); with "cancel" it is cancelled and this waits for it to end. In the
    embedded mode the request is always cancelled: its worker stops with this call.
    """
    if on_timeout not in ("leave", "cancel"):
        raise ValueError(f"on_timeout must be 'leave' or 'cancel', not {on_timeout!r}")
    loaded = load_config(config) if config else None
    defaults = (loaded or active_config()).defaults  # workers.yml's defaults:, as the CLI applies them
    params = make_params(source, destination, defaults=defaults, **options)
    check_request_paths(params, loaded)  # before the embedded services start for nothing
    rid = params.request_id
    with control_plane(config, worker_concurrency=params.parallelism) as plane:
        submit(plane.sender, plane.store, params, check_paths=False, config=loaded)  # checked above
        try:
            return summarize(rid, wait(plane.store, rid, timeout=timeout, alive=plane.alive))
        except TimeoutError as exc:
            if on_timeout == "cancel" or plane.embedded is not None:
                cancel(plane.store, rid)
                try:
                    end = wait(plane.store, rid, timeout=CANCEL_WAIT_SECONDS, alive=plane.alive)["state"]
                except TimeoutError:
                    end = f"not ended after {CANCEL_WAIT_SECONDS:g} s more"
                raise SyncTimeout(f"{exc}; cancelled: it ended {end}", rid, True) from None
            raise SyncTimeout(
                f"{exc}; it keeps running: follow it with `dms-submit watch {rid}`, "
                f"stop it with `dms-submit cancel {rid}`",
                rid,
                False,
            ) from None
