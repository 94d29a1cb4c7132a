"""Load and validate DMS's YAML configuration (workers.yml) into typed records.

Every error names the file, the key and the bad value, so an operator can fix
it without reading code. The full schema (clusters, nodes, NICs) grows with
the data-plane work; today the file holds:

control:                      # where the control plane lives (all optional)
  broker_url: redis://...     # Celery broker; also the state store unless state_url is set
  result_backend: redis://... # Celery result backend (default: broker_url)
  state_url: redis://...      # DMS request state (default: broker_url)
defaults:                     # defaults for sync requests (all optional)
  parallelism: 4              # transfer tasks of one request in flight at once
  chunk_size: 64MiB           # largest piece of one file per transfer task
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dms.errors import ConfigError
from dms.sizes import parse_size

__all__ = ["ControlConfig", "DefaultsConfig", "DmsConfig", "load_config"]


@dataclass(frozen=True)
class ControlConfig:
    broker_url: str | None = None
    result_backend: str | None = None
    state_url: str | None = None


@dataclass(frozen=True)
class DefaultsConfig:
    parallelism: int = 4
    chunk_size: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class DmsConfig:
    path: str
    control: ControlConfig = field(default_factory=ControlConfig)
    defaults: DefaultsConfig = field(default_factory=DefaultsConfig)


def load_config(path: str | Path) -> DmsConfig:
    path = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(raw).__name__}")
    control = _section(path, raw, "control")
    defaults = _section(path, raw, "defaults")
    return DmsConfig(
        path=path,
        control=ControlConfig(
            broker_url=_url(path, control, "broker_url"),
            result_backend=_url(path, control, "result_backend"),
            state_url=_url(path, control, "state_url"),
        ),
        defaults=DefaultsConfig(
            parallelism=_positive_int(path, defaults, "parallelism", 4),
            chunk_size=_size(path, defaults, "chunk_size", 64 * 1024 * 1024),
        ),
    )


def _section(path: str, raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: key '{name}' must be a mapping, got {value!r}")
    return value


def _url(path: str, section: dict[str, Any], key: str) -> str | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or "://" not in value:
        raise ConfigError(f"{path}: key 'control.{key}' must be a URL such as redis://host:6379/0, got {value!r}")
    return value


def _positive_int(path: str, section: dict[str, Any], key: str, default: int) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{path}: key 'defaults.{key}' must be a positive integer, got {value!r}")
    return value


def _size(path: str, section: dict[str, Any], key: str, default: int) -> int:
    value = section.get(key, default)
    try:
        size = parse_size(value)
    except (ValueError, TypeError):
        raise ConfigError(f"{path}: key 'defaults.{key}' must be a size such as 64MiB, got {value!r}") from None
    if size < 1:
        raise ConfigError(f"{path}: key 'defaults.{key}' must be positive, got {value!r}")
    return size
