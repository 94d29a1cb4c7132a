"""Where DMS's control plane lives: the broker, result backend and state store URLs.

Resolution order, first hit wins, for each of the three:
  1. the environment: DMS_BROKER_URL, DMS_RESULT_BACKEND, DMS_STATE_URL;
  2. the `control:` section of the YAML file named by DMS_CONFIG (or --config);
  3. for result backend and state store, the broker URL.
`Endpoints.configured` says whether anything named a broker at all; the CLI
runs the embedded default when nothing did. Workers started with plain
`celery -A dms worker` and nothing configured use redis://127.0.0.1:6379/0.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from dms.config import DmsConfig, NodeConfig, load_config
from dms.errors import ConfigError

__all__ = [
    "DEFAULT_BROKER_URL",
    "Endpoints",
    "active_config",
    "current_node",
    "redacted",
    "redis_client_url",
    "resolve_endpoints",
]

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Endpoints:
    broker_url: str
    result_backend: str
    state_url: str
    configured: bool


#: URL schemes of a Redis that kombu (the broker) and redis-py (the state) both reach.
REDIS_SCHEMES = ("redis", "rediss", "redis+socket", "unix")


def redacted(url: str) -> str:
    """`url` with its password replaced by `***`, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def resolve_endpoints(config_path: str | None = None, environ: dict[str, str] | None = None) -> Endpoints:
    env = os.environ if environ is None else environ
    path = config_path or env.get("DMS_CONFIG") or None
    control = load_config(path).control if path else None
    broker = env.get("DMS_BROKER_URL") or (control.broker_url if control else None)
    backend = env.get("DMS_RESULT_BACKEND") or (control.result_backend if control else None)
    state = env.get("DMS_STATE_URL") or (control.state_url if control else None)
    configured = broker is not None
    broker = broker or DEFAULT_BROKER_URL
    for name, url in (("broker", broker), ("result backend", backend), ("state", state)):
        if url is not None and urlsplit(url).scheme not in REDIS_SCHEMES:
            raise ConfigError(f"{name} URL {redacted(url)!r}: DMS needs Redis ({', '.join(REDIS_SCHEMES)}://...)")
    return Endpoints(broker, backend or broker, state or redis_client_url(broker), configured)


def redis_client_url(url: str) -> str:
    """Turn a kombu broker URL into one redis-py understands.

    kombu spells a Unix socket `redis+socket:///path?virtual_host=N`; redis-py
    wants `unix:///path?db=N`. TCP URLs are the same for both.
    """
    if not url.startswith("redis+socket://"):
        return url
    parts = urlsplit(url)
    db = parse_qs(parts.query).get("virtual_host", ["0"])[0]
    return f"unix://{parts.path}?db={db}"


@functools.cache
def _load_cached(path: str) -> DmsConfig:
    return load_config(path)


def active_config() -> DmsConfig:
    """The workers.yml named by DMS_CONFIG (loaded once per process), or an empty one."""
    path = os.environ.get("DMS_CONFIG")
    return _load_cached(path) if path else DmsConfig(path="(no DMS_CONFIG)")


def current_node() -> NodeConfig | None:
    """The node this process serves: DMS_NODE, set by the worker bootstep (--dms-node)
    before the pool starts, so every pool process inherits it."""
    name = os.environ.get("DMS_NODE")
    return active_config().node(name) if name else None
