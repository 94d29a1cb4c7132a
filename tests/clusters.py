"""Helpers for cross-cluster tests: a workers.yml, node workers started with `dms-worker`.

Used by the loopback test (several "nodes" on 127.0.0.x) and by the network
namespace test (each node in its own namespace; `netns` prefixes the command
with `ip netns exec`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dms.processes import stop_process_group


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
        args = [sys.executable, "-m", "dms.worker", self.node, "--config", str(self.config), "--",
                "--without-heartbeat", "-I", "tests.example_tasks"]  # fmt: skip
        if self.netns:
            args = ["ip", "netns", "exec", self.netns, *args]
        env = {**os.environ, **self.env, "DMS_CONFIG": str(self.config)}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.node} exited:\n{self.log()}")
            text = self.log()
            if " ready." in text and "receiving on" in text:
                return self
            time.sleep(0.05)
        raise RuntimeError(f"worker {self.node} not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc)
            self.proc = None
