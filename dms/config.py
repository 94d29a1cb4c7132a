"""Load and validate DMS's YAML configuration (workers.yml) into typed records.

Every error names the file, the key and the bad value, so an operator can fix
it without reading code. docs/operations.md ("workers.yml") documents every
key; in short:

control:                      # where the control plane lives (all optional)
  broker_url: redis://...     # Celery broker; also the state store unless state_url is set
  result_backend: redis://... # Celery result backend (default: broker_url)
  state_url: redis://...      # DMS request state (default: broker_url)
defaults:                     # defaults for sync requests and workers (all optional)
  parallelism: 4              # transfer tasks of one request in flight at once
  chunk_size: 64MiB           # largest piece of one file per transfer task
  scheduler: least_loaded     # scheduler policy (entry point in dms.scheduler_policies)
  heartbeat_interval: 2       # seconds between a worker's heartbeats
  heartbeat_ttl: 10           # a node whose last heartbeat is older is not scheduled
  data_timeout: 60            # seconds a data connection may stall before its unit is re-routed
  stall_timeout: 120          # seconds a running unit's byte count may stand still before it runs again
clusters:                     # optional: the multi-node, multi-NIC deployment
  <cluster>:
    nodes:
      <node>:                 # unique across clusters; `dms-worker <node>` starts it
        control: {interface: eth0, address: 10.0.0.11}
        data:                 # data-plane NICs, any number (network: optional rail label)
          - {interface: ib0, address: 192.168.100.11, network: rail0}
        port: 7400            # the data receiver's TCP port on every data address
        roots: [/lustre/a]    # path prefixes this node may read from or write into
        concurrency: 4        # worker processes (parallel streams)
        secret_file: /etc/dms/secret   # the shared data-plane secret (never the secret itself)
        metrics_port: 9464    # optional: Prometheus metrics on the control address (dms.worker.metrics)
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dms import defaults as default
from dms.errors import AuthenticationError, ConfigError
from dms.sizes import parse_size

__all__ = [
    "ClusterConfig",
    "ControlConfig",
    "DefaultsConfig",
    "DmsConfig",
    "Endpoint",
    "NodeConfig",
    "load_config",
    "read_secret",
    "read_secrets",
    "with_secrets",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")  # cluster, node: safe in queue names and keys
_IFACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,14}$")  # Linux IFNAMSIZ is 16 with the NUL
MIN_SECRET_BYTES = 16


@dataclass(frozen=True)
class ControlConfig:
    broker_url: str | None = None
    result_backend: str | None = None
    state_url: str | None = None


@dataclass(frozen=True)
class DefaultsConfig:
    parallelism: int = default.PARALLELISM
    chunk_size: int = default.CHUNK_SIZE
    scheduler: str = default.SCHEDULER
    heartbeat_interval: float = 2.0
    heartbeat_ttl: float = 10.0
    data_timeout: float = 60.0
    #: a running unit whose byte counter has not moved for this long is published again
    stall_timeout: float = 120.0


@dataclass(frozen=True)
class Endpoint:
    """One interface of a node: its name and address (and, for data NICs, a rail label)."""

    interface: str
    address: str
    network: str = ""


@dataclass(frozen=True)
class NodeConfig:
    name: str
    cluster: str
    control: Endpoint | None
    data: tuple[Endpoint, ...]
    port: int
    roots: tuple[str, ...]
    concurrency: int
    secret_file: str | None
    #: TCP port of the node's Prometheus metrics (dms.worker.metrics); 0: not served
    metrics_port: int = 0


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    nodes: tuple[NodeConfig, ...]


@dataclass(frozen=True)
class DmsConfig:
    path: str
    control: ControlConfig = field(default_factory=ControlConfig)
    defaults: DefaultsConfig = field(default_factory=DefaultsConfig)
    clusters: dict[str, ClusterConfig] = field(default_factory=dict)

    def node(self, name: str) -> NodeConfig:
        for cluster in self.clusters.values():
            for node in cluster.nodes:
                if node.name == name:
                    return node
        known = ", ".join(sorted(n.name for c in self.clusters.values() for n in c.nodes)) or "none"
        raise ConfigError(f"{self.path}: no node named {name!r} under 'clusters' (known: {known})")

    def cluster(self, name: str) -> ClusterConfig:
        try:
            return self.clusters[name]
        except KeyError:
            known = ", ".join(sorted(self.clusters)) or "none"
            raise ConfigError(f"{self.path}: no cluster named {name!r} (known: {known})") from None


def load_config(path: str | Path) -> DmsConfig:
    path = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from exc
    import yaml  # here, not at the top: a client with no workers.yml never loads PyYAML

    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(raw).__name__}")
    control = _section(path, raw, "control")
    defaults = _section(path, raw, "defaults")
    unknown = set(raw) - {"control", "defaults", "clusters"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {sorted(unknown)}; expected control, defaults, clusters")
    return DmsConfig(
        path=path,
        control=ControlConfig(
            broker_url=_url(path, control, "broker_url"),
            result_backend=_url(path, control, "result_backend"),
            state_url=_url(path, control, "state_url"),
        ),
        defaults=DefaultsConfig(
            parallelism=_positive_int(path, defaults, "parallelism", DefaultsConfig.parallelism),
            chunk_size=_size(path, defaults, "chunk_size", DefaultsConfig.chunk_size),
            scheduler=_name_string(path, defaults, "scheduler", DefaultsConfig.scheduler),
            heartbeat_interval=_seconds(path, defaults, "heartbeat_interval", DefaultsConfig.heartbeat_interval),
            heartbeat_ttl=_seconds(path, defaults, "heartbeat_ttl", DefaultsConfig.heartbeat_ttl),
            data_timeout=_seconds(path, defaults, "data_timeout", DefaultsConfig.data_timeout),
            stall_timeout=_seconds(path, defaults, "stall_timeout", DefaultsConfig.stall_timeout),
        ),
        clusters=_clusters(path, raw.get("clusters")),
    )


def read_secret(node: NodeConfig, config_path: str) -> bytes:
    """The data-plane secret a node sends (the first line of its secret_file)."""
    return read_secrets(node, config_path)[0]


def read_secrets(node: NodeConfig, config_path: str) -> tuple[bytes, bytes]:
    """The node's data-plane secrets from its secret_file: the first non-empty line is the
    current one (sent, and accepted); an optional second line is the previous one (also
    accepted, and tried by a sender the peer refused), so secrets rotate one node at a time
    (docs/operations.md, "Rotating the data-plane secret"). Each is whitespace-stripped and
    at least 16 bytes; (current, b"") when there is no second line.

    Refuses a file other users can read: the secret is what stands between the
    data port and anyone on the data network.
    """
    where = f"{config_path}: node {node.name}"
    if not node.secret_file:
        raise ConfigError(f"{config_path}: key 'clusters.{node.cluster}.nodes.{node.name}.secret_file' is required")
    try:
        st = os.stat(node.secret_file)
        with open(node.secret_file, "rb") as f:
            lines = [line.strip() for line in f.read().splitlines() if line.strip()]
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read secret_file {node.secret_file}: {exc.strerror}") from exc
    if st.st_mode & 0o077:
        raise ConfigError(f"{where}: secret_file {node.secret_file} is readable by "
                          f"other users (mode {st.st_mode & 0o777:o}); chmod 600 it")  # fmt: skip
    if not lines or len(lines) > 2:
        raise ConfigError(f"{where}: secret_file {node.secret_file} must hold the current secret on its first "
                          f"line and at most a previous one on a second (it has {len(lines)} lines)")  # fmt: skip
    for which, secret in zip(("secret", "previous secret"), lines, strict=False):
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(f"{where}: the {which} in {node.secret_file} is shorter than "
                              f"{MIN_SECRET_BYTES} bytes")  # fmt: skip
    return lines[0], (lines[1] if len(lines) > 1 else b"")


_T = TypeVar("_T")


def with_secrets(secrets: tuple[bytes, bytes], attempt: Callable[[bytes], _T]) -> _T:
    """`attempt(current)`; if the peer refuses that secret (AuthenticationError) and there is
    a previous one, `attempt(previous)`: a peer not rotated yet knows only the previous
    secret (decision 0026). Every connection a node opens to a peer goes through here."""
    current, previous = secrets
    try:
        return attempt(current)
    except AuthenticationError:
        if not previous:
            raise
        return attempt(previous)


def _clusters(path: str, raw: Any) -> dict[str, ClusterConfig]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: key 'clusters' must be a mapping of cluster names, got {raw!r}")
    clusters: dict[str, ClusterConfig] = {}
    seen_nodes: dict[str, str] = {}
    for cname, body in raw.items():
        where = f"clusters.{cname}"
        if not isinstance(cname, str) or not _NAME.match(cname):
            raise ConfigError(f"{path}: key '{where}': a cluster name must match {_NAME.pattern}, got {cname!r}")
        if not isinstance(body, dict) or not isinstance(body.get("nodes"), dict) or not body["nodes"]:
            raise ConfigError(f"{path}: key '{where}.nodes' must be a non-empty mapping of node names")
        nodes = []
        for nname, nbody in body["nodes"].items():
            node = _node(path, cname, nname, nbody)
            if node.name in seen_nodes:
                raise ConfigError(f"{path}: key '{where}.nodes.{nname}': node name already used in cluster "
                                  f"{seen_nodes[node.name]!r}; node names must be unique")  # fmt: skip
            seen_nodes[node.name] = cname
            nodes.append(node)
        clusters[cname] = ClusterConfig(cname, tuple(nodes))
    return clusters


def _node(path: str, cluster: str, name: Any, raw: Any) -> NodeConfig:
    where = f"clusters.{cluster}.nodes.{name}"
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{path}: key '{where}': a node name must match {_NAME.pattern}, got {name!r}")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: key '{where}' must be a mapping, got {raw!r}")
    known = {"control", "data", "port", "roots", "concurrency", "secret_file", "metrics_port"}
    if unknown := set(raw) - known:
        raise ConfigError(f"{path}: key '{where}': unknown key(s) {sorted(unknown)}; expected {sorted(known)}")
    control = _endpoint(path, f"{where}.control", raw["control"]) if raw.get("control") is not None else None
    data_raw = raw.get("data")
    if not isinstance(data_raw, list) or not data_raw:
        raise ConfigError(f"{path}: key '{where}.data' must be a non-empty list of {{interface, address}}, "
                          f"got {data_raw!r}")  # fmt: skip
    data = tuple(_endpoint(path, f"{where}.data[{i}]", e) for i, e in enumerate(data_raw))
    ifaces = [e.interface for e in data]
    if len(set(ifaces)) != len(ifaces):
        raise ConfigError(f"{path}: key '{where}.data': interface names repeat: {ifaces}")
    port = raw.get("port", 7400)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ConfigError(f"{path}: key '{where}.port' must be a TCP port 1..65535, got {port!r}")
    roots_raw = raw.get("roots")
    if not isinstance(roots_raw, list) or not roots_raw:
        raise ConfigError(f"{path}: key '{where}.roots' must be a non-empty list of absolute paths, got {roots_raw!r}")
    roots = []
    for i, r in enumerate(roots_raw):
        if not isinstance(r, str) or not os.path.isabs(r) or "\0" in r:
            raise ConfigError(f"{path}: key '{where}.roots[{i}]' must be an absolute path, got {r!r}")
        parts = r.split("/")
        if ".." in parts or "." in parts:
            raise ConfigError(f"{path}: key '{where}.roots[{i}]' must not contain '.' or '..', got {r!r}")
        roots.append(os.path.normpath(r))
    concurrency = raw.get("concurrency", 4)
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ConfigError(f"{path}: key '{where}.concurrency' must be a positive integer, got {concurrency!r}")
    secret_file = raw.get("secret_file")
    if secret_file is not None and (not isinstance(secret_file, str) or not os.path.isabs(secret_file)):
        raise ConfigError(f"{path}: key '{where}.secret_file' must be an absolute path to a file, got {secret_file!r}")
    metrics_port = raw.get("metrics_port", 0)
    if not isinstance(metrics_port, int) or isinstance(metrics_port, bool) or not 0 <= metrics_port <= 65535:
        raise ConfigError(f"{path}: key '{where}.metrics_port' must be a TCP port 1..65535 (0: off), "
                          f"got {metrics_port!r}")  # fmt: skip
    return NodeConfig(name, cluster, control, data, port, tuple(roots), concurrency, secret_file, metrics_port)


def _endpoint(path: str, where: str, raw: Any) -> Endpoint:
    if not isinstance(raw, dict) or "interface" not in raw or "address" not in raw:
        raise ConfigError(f"{path}: key '{where}' must be a mapping with 'interface' and 'address', got {raw!r}")
    if unknown := set(raw) - {"interface", "address", "network"}:
        raise ConfigError(f"{path}: key '{where}': unknown key(s) {sorted(unknown)}")
    iface, address, network = raw["interface"], raw["address"], raw.get("network", "")
    if not isinstance(iface, str) or not _IFACE.match(iface):
        raise ConfigError(f"{path}: key '{where}.interface' must be an interface name such as ib0, got {iface!r}")
    try:
        ipaddress.ip_address(str(address))
    except ValueError:
        raise ConfigError(f"{path}: key '{where}.address' must be a numeric IPv4 or IPv6 address, "
                          f"got {address!r}") from None  # fmt: skip
    if not isinstance(network, str) or (network and not _NAME.match(network)):
        raise ConfigError(f"{path}: key '{where}.network' must be a short label such as rail0, got {network!r}")
    return Endpoint(iface, str(address), network)


def _name_string(path: str, section: dict[str, Any], key: str, default: str) -> str:
    value = section.get(key, default)
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigError(f"{path}: key 'defaults.{key}' must be a name such as {default}, got {value!r}")
    return value


def _seconds(path: str, section: dict[str, Any], key: str, default: float) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{path}: key 'defaults.{key}' must be a positive number of seconds, got {value!r}")
    return float(value)


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
