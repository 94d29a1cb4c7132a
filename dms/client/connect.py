"""Reach the control plane: a configured DMS service, or the embedded default.

Used by `dms-submit` and by `dms.sync()`, so both decide the same way.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dms.errors import RequestError
from dms.settings import resolve_endpoints
from dms.state.messages import KombuSender, RespSender
from dms.state.requests import RequestStore, connect
from dms.state.resp import connect_light, light_url

if TYPE_CHECKING:
    from dms.client.embedded import EmbeddedService

__all__ = ["ControlPlane", "control_plane"]


@dataclass
class ControlPlane:
    sender: KombuSender | RespSender  # publishes dms.plan (dms.state.messages: no Celery app in a client)
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
    The sender's and the store's connections are closed on the way out.
    """
    endpoints = resolve_endpoints(config_path, environ)
    env = os.environ if environ is None else environ
    if endpoints.configured:
        with _connected(endpoints.broker_url, endpoints.state_url, None, env) as plane:
            yield plane
        return
    from dms.client.embedded import EmbeddedService, default_state_dir  # a service's client never starts one

    if not worker_concurrency and not (default_state_dir() / "appendonlydir").exists():
        raise RequestError(f"no embedded requests yet (state directory {default_state_dir()})")
    with (
        EmbeddedService(worker_concurrency=worker_concurrency) as service,
        _connected(service.broker_url, service.state_url, service, env) as plane,
    ):
        yield plane


def light_client_wanted(broker_url: str, state_url: str, environ: Mapping[str, str]) -> bool:
    """dms.state.resp and RespSender serve plain Redis URLs (decision 0018); DMS_LIGHT_CLIENT=0
    makes a client use redis-py and kombu, as workers do."""
    wanted = environ.get("DMS_LIGHT_CLIENT", "1") != "0"
    return wanted and light_url(broker_url) is not None and light_url(state_url) is not None


@contextlib.contextmanager
def _connected(
    broker_url: str, state_url: str, embedded: EmbeddedService | None, environ: Mapping[str, str]
) -> Iterator[ControlPlane]:
    """The store and the sender of a client; both connections are closed on the way out."""
    sender: KombuSender | RespSender
    if light_client_wanted(broker_url, state_url, environ):
        store = RequestStore(connect_light(state_url))
        sender = RespSender(broker_url)
    else:
        store = RequestStore(connect(state_url))
        sender = KombuSender(broker_url)
    try:
        yield ControlPlane(sender, store, embedded)
    finally:
        sender.close()
        store.close()
