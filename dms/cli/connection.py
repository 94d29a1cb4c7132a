"""Reach the control plane from the CLI: a configured service, or the embedded default."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from celery import Celery

from dms.embedded import EmbeddedService, default_state_dir
from dms.errors import DmsError, RequestError
from dms.settings import resolve_endpoints
from dms.state import RequestStore, connect

__all__ = ["ControlPlane", "control_plane"]


@dataclass
class ControlPlane:
    app: Celery
    store: RequestStore
    embedded: EmbeddedService | None

    @property
    def alive(self) -> Callable[[], None] | None:
        return self.embedded.check_worker if self.embedded else None


@contextlib.contextmanager
def control_plane(obj: dict[str, str | None], *, worker_concurrency: int = 0) -> Iterator[ControlPlane]:
    """Yield a connected app and store; in embedded mode, start (and then stop) the private services.

    worker_concurrency > 0 asks for an embedded worker too (a sync); 0 only
    needs the state (status, list), and a missing embedded state is an error.
    """
    from dms.application import app

    env = dict(os.environ)
    if obj.get("broker_url"):
        env["DMS_BROKER_URL"] = obj["broker_url"] or ""
    endpoints = resolve_endpoints(obj.get("config_path"), env)
    if endpoints.configured:
        app.conf.broker_url = endpoints.broker_url
        app.conf.result_backend = endpoints.result_backend
        yield ControlPlane(app, RequestStore(connect(endpoints.state_url)), None)
        return
    if not worker_concurrency and not (default_state_dir() / "appendonlydir").exists():
        raise RequestError(f"no embedded requests yet (state directory {default_state_dir()})")
    with EmbeddedService(worker_concurrency=worker_concurrency) as service:
        app.conf.broker_url = service.broker_url
        app.conf.result_backend = service.broker_url
        yield ControlPlane(app, RequestStore(connect(service.state_url)), service)


def fail(error: DmsError) -> None:
    from dms.cli import DmsCliError

    raise DmsCliError(error)
