"""Reach the control plane: a configured DMS service, or the embedded default.

Used by `dms-submit` and by `dms.sync()`, so both decide the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from dms.embedded import EmbeddedService, default_state_dir
from dms.errors import RequestError
from dms.publishing import KombuSender
from dms.settings import resolve_endpoints
from dms.state import RequestStore, connect

__all__ = ["ControlPlane", "control_plane"]


@dataclass
class ControlPlane:
    sender: KombuSender  # publishes dms.plan (dms.publishing: no Celery app in a client)
    store: RequestStore
    embedded: EmbeddedService | None

    @property
    def alive(self) -> Callable[[], None] | None:
        """For wait(): raises when the embedded worker died; None for a service."""
        return self.embedded.check_worker if self.embedded else None


@contextlib.contextmanager
def control_plane(
    config_path: str | None = None, environ: dict[str, str] | None = None, *, worker_concurrency: int = 0
) -> Iterator[ControlPlane]:
    """Yield a connected app and store; in embedded mode, start (and then stop) the private services.

    worker_concurrency > 0 asks for an embedded worker too (a sync); 0 only
    needs the state (status, list), and a missing embedded state is an error.
    The sender's broker connection is closed on the way out.
    """
    endpoints = resolve_endpoints(config_path, environ)
    if endpoints.configured:
        sender = KombuSender(endpoints.broker_url)
        try:
            yield ControlPlane(sender, RequestStore(connect(endpoints.state_url)), None)
        finally:
            sender.close()
        return
    if not worker_concurrency and not (default_state_dir() / "appendonlydir").exists():
        raise RequestError(f"no embedded requests yet (state directory {default_state_dir()})")
    with EmbeddedService(worker_concurrency=worker_concurrency) as service:
        sender = KombuSender(service.broker_url)
        try:
            yield ControlPlane(sender, RequestStore(connect(service.state_url)), service)
        finally:
            sender.close()
