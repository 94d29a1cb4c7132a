"""Helpers for cross-cluster tests: a workers.yml, node workers started with `dms-worker`.

Used by the loopback test (several "nodes" on 127.0.0.x) and by the network
namespace test (each node in its own namespace; `netns` prefixes the command
with `ip netns exec`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dms.client.processes import stop_process_group
from tests.services import RedisServer, read_log, start_logged


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def write_secret(path: Path) -> Path:
    path.write_bytes(os.urandom(24).hex().encode() + b"\n")
    path.chmod(0o600)
    return path


def write_config(path: Path, clusters: dict[str, Any], defaults: dict[str, Any] | None = None) -> Path:
    path.write_text(yaml.safe_dump({"defaults": defaults or {}, "clusters": clusters}, sort_keys=False))
    return path


@dataclass
class NodeWorker:
    """`dms-worker NODE` as a real process (optionally inside a network namespace)."""

    node: str
    config: Path
    env: dict[str, str]
    log_path: Path
    netns: str | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, timeout: float = 60.0) -> NodeWorker:
        args = [sys.executable, "-m", "dms.worker.main", self.node, "--config", str(self.config), "--",
                "--without-heartbeat", "-I", "tests.example_tasks"]  # fmt: skip
        if self.netns:
            args = ["ip", "netns", "exec", self.netns, *args]
        env = {**os.environ, **self.env, "DMS_CONFIG": str(self.config)}
        ready = (" ready.", "receiving on", "is up")
        self.proc = start_logged(f"worker {self.node}", args, env, self.log_path, ready, timeout)
        return self

    def log(self) -> str:
        return read_log(self.log_path)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc)
            self.proc = None


@dataclass
class Deployment:
    """A running multi-host DMS: topology, Redis on the control network, one worker per node."""

    topo: Any
    root: Path
    config: Path
    workers: dict[str, NodeWorker]
    store: Any
    app: Any
    redis: Any = None  # its RedisServer, to stop and start again


@contextlib.contextmanager
def multihost_deployment(
    root: Path,
    clusters: dict[str, list[str]],
    concurrency: int = 2,
    defaults: dict[str, Any] | None = None,
    data_nics: int = 2,
    redis_options: tuple[str, ...] = (),
    worker_env: dict[str, str] | None = None,
) -> Iterator[Deployment]:
    """Build tests/netns.py's topology for `clusters` ({"A": ["a1", "a2"], "B": ["b1"]}), start
    redis-server in its own namespace (TCP on the control network, plus a Unix socket for
    this process, which has no leg on that network) and `dms-worker` in each node's namespace.
    Node roots are root/<cluster lowercase>."""
    from celery import Celery

    from dms.state.requests import RequestStore, connect
    from tests.netns import Topology

    nodes = [n for names in clusters.values() for n in names]
    topo = Topology.build(nodes, data_nics)
    redis_server = None
    workers: dict[str, NodeWorker] = {}
    try:
        # TCP on the control network for the workers, the Unix socket for this process
        redis_server = RedisServer(
            root,
            launcher=["ip", "netns", "exec", topo.host("redis").ns],
            options=["--bind", topo.redis_address, "--port", "6379", "--protected-mode", "no", *redis_options],
        )
        redis_server.start()
        sock = redis_server.socket
        secret = write_secret(root / "secret")
        spec: dict[str, Any] = {}
        for cluster, names in clusters.items():
            data_root = root / cluster.lower()
            data_root.mkdir(exist_ok=True)
            spec[cluster] = {"nodes": {}}
            for name in names:
                h = topo.host(name)
                spec[cluster]["nodes"][name] = {
                    "control": {"interface": "c0", "address": h.control_address},
                    "data": [{"interface": i, "address": h.data_address(k)} for k, i in enumerate(h.data_interfaces())],
                    "port": 7400,
                    "roots": [str(data_root)],
                    "concurrency": concurrency,
                    "secret_file": str(secret),
                }
        config = write_config(root / "workers.yml", spec, defaults=defaults)
        url = f"redis://{topo.redis_address}:6379/0"
        env = {"DMS_BROKER_URL": url, "DMS_RESULT_BACKEND": url, "DMS_STATE_URL": url, **(worker_env or {})}
        for name in nodes:
            workers[name] = NodeWorker(name, config, env, root / f"{name}.log", netns=topo.host(name).ns).start()
        os.environ["DMS_CONFIG"] = str(config)
        app = Celery("dms-multihost-client", broker=f"redis+socket://{sock}?virtual_host=0")
        app.conf.update(task_serializer="json", accept_content=["json"], task_create_missing_queues=True)
        store = RequestStore(connect(f"unix://{sock}?db=0"))
        deadline = time.monotonic() + 30
        while len(store.r.keys("dms:node:*")) < len(nodes) and time.monotonic() < deadline:
            time.sleep(0.1)
        yield Deployment(topo, root, config, workers, store, app, redis_server)
    finally:
        for w in workers.values():
            w.stop()
        if redis_server is not None:
            redis_server.stop()
        topo.down()
        os.environ.pop("DMS_CONFIG", None)
        from dms.settings import _load_cached

        _load_cached.cache_clear()
