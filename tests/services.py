"""Real processes for the tests: a private redis-server and `celery worker` subprocesses.

No mocks and no in-process worker (DEVELOPERS.md "Real parts, really started"):
each worker is `python -m celery -A dms worker` in its own process group,
stopped with SIGTERM then SIGKILL of the whole group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from dms.client.processes import stop_process_group

REDIS_MISSING = "redis-server is not installed; run the README's test command (it installs it)"


@dataclass
class RedisServer:
    """A private redis-server on a Unix socket in `directory` (no persistence). `launcher`
    prefixes the command (e.g. `ip netns exec NS`); `options` are added last, so they win."""

    directory: Path
    launcher: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> str:
        return str(self.directory / "redis.sock")

    @property
    def broker_url(self) -> str:
        return f"redis+socket://{self.socket}?virtual_host=0"

    @property
    def state_url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def env(self) -> dict[str, str]:
        return {
            "DMS_BROKER_URL": self.broker_url,
            "DMS_RESULT_BACKEND": self.broker_url,
            "DMS_STATE_URL": self.state_url,
        }

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(REDIS_MISSING)
        args = [binary, "--port", "0", "--unixsocket", self.socket, "--unixsocketperm", "700",
                "--save", "", "--appendonly", "no", "--dir", str(self.directory),
                "--logfile", str(self.directory / "redis.log"), *self.options]  # fmt: skip
        self.proc = subprocess.Popen([*self.launcher, *args], start_new_session=True, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError, OSError):
                redis.Redis(unix_socket_path=self.socket).ping()
                return self
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start; see {self.directory / 'redis.log'}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc)
            self.proc = None


@dataclass
class Worker:
    """One `celery -A dms worker` process consuming `queues`."""

    name: str
    queues: str
    env: dict[str, str]
    log_path: Path
    concurrency: int = 2
    include: str = "tests.example_tasks"  # a user's own tasks, as in docs/api.md
    #: run the README's command as written (mingle, gossip and worker heartbeats on)
    as_readme: bool = False
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, timeout: float = 60.0) -> Worker:
        quiet = [] if self.as_readme else ["--without-mingle", "--without-gossip", "--without-heartbeat"]
        args = [sys.executable, "-m", "celery", "-A", "dms", "worker", "-Q", self.queues,
                "-c", str(self.concurrency), "-n", f"{self.name}@%h", "-P", "prefork",
                *quiet, "-l", "INFO", "-I", self.include]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "DMS_CONFIG"}  # the test's own env names one
        env.update(self.env)
        self.proc = start_logged(self.name, args, env, self.log_path, (" ready.",), timeout)
        return self

    def log(self) -> str:
        return read_log(self.log_path)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc)
            self.proc = None


def read_log(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def start_logged(
    name: str, args: list[str], env: dict[str, str], log_path: Path, ready: tuple[str, ...], timeout: float
) -> subprocess.Popen[bytes]:
    """Start `args` in its own process group, logging to `log_path` (appended), and wait until
    what it writes now contains every `ready` marker; raise with the log if it exits or stalls."""
    offset = len(read_log(log_path))  # a restarted process appends: only what it writes now counts
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{read_log(log_path)}")
        text = read_log(log_path)[offset:]
        if all(marker in text for marker in ready):
            return proc
        time.sleep(0.05)
    raise RuntimeError(f"{name} not ready after {timeout} s:\n{read_log(log_path)}")


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live (non-zombie) processes whose command line or working directory
    contains `text` (redis-server retitles itself, but runs in its --dir)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if (text in cmdline or text in cwd) and state != "Z":
            found.append(f"{pid}: {cmdline} (in {cwd})")
    return found
