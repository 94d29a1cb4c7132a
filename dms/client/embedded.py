"""The embedded default: a private redis-server and a local worker, started and stopped by us.

When no broker is configured, `dms-submit sync ... --wait` still runs the real
pipeline (the same tasks, the same Redis code paths) on this machine:

  * redis-server listens only on a Unix socket (mode 0700) in a fresh private
    directory, and keeps its data (append-only file) in the state directory,
    so `dms-submit status` and `list` work after the sync has ended;
  * one `celery -A dms worker` serves the control and data queues;
  * both run in their own process groups and are stopped on exit, on Ctrl-C, SIGTERM
    and SIGHUP; they die with dms-submit if it is killed (PR_SET_PDEATHSIG), and what a
    killed run left anyway is reaped by the next one (the groups are recorded in the
    state directory): nothing is left running.

A lock file in the state directory keeps two embedded servers from sharing one
data directory; a second `dms-submit` connects to the running one instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dms.client.processes import die_with_parent, reap_recorded, record_started, stop_process_group
from dms.errors import EmbeddedError
from dms.route.queues import worker_queues
from dms.state.broker import answers_on_socket, compact_append_only

__all__ = ["EmbeddedService", "default_state_dir"]

_REDIS_HINT = "install it with: sudo apt-get install redis-server (Debian/Ubuntu)"


def default_state_dir() -> Path:
    base = os.environ.get("DMS_HOME") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "dms"
    )
    return Path(base) / "embedded"


@dataclass
class EmbeddedService:
    """Context manager: start the private Redis (and optionally a worker), stop both on exit."""

    state_dir: Path = field(default_factory=default_state_dir)
    worker_concurrency: int = 0  # 0: no worker (read-only use: status, list)
    startup_timeout: float = 30.0
    socket_path: str = ""
    _lock_fd: int = -1
    _socket_dir: str = ""
    _redis: subprocess.Popen[bytes] | None = None
    _worker: subprocess.Popen[bytes] | None = None
    _owner: bool = False
    _old_handlers: dict[int, Any] = field(default_factory=dict)

    @property
    def broker_url(self) -> str:
        return f"redis+socket://{self.socket_path}?virtual_host=0"

    @property
    def state_url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    def environment(self) -> dict[str, str]:
        return {
            "DMS_BROKER_URL": self.broker_url,
            "DMS_RESULT_BACKEND": self.broker_url,
            "DMS_STATE_URL": self.state_url,
        }

    def __enter__(self) -> EmbeddedService:
        try:
            self._stop_on_signals()
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stop_on_signals(self) -> None:
        """SIGTERM and SIGHUP (a closed terminal, a job killed by a scheduler) end dms-submit
        as Ctrl-C does, through close(), instead of leaving the services running. Only the
        main thread can set handlers; dms.sync() from another thread keeps the defaults."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, _exit_on)

    # -- start ------------------------------------------------------------------------
    def _start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_fd = os.open(self.state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._owner = True
        except BlockingIOError:
            self._attach_to_running()
            return
        reap_recorded(self.state_dir / "processes")  # a run killed before it could stop its own
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise EmbeddedError(f"the embedded mode needs redis-server, which is not on PATH; {_REDIS_HINT}")
        self._socket_dir = tempfile.mkdtemp(prefix="dms-embedded-")
        self.socket_path = os.path.join(self._socket_dir, "redis.sock")
        args = [
            redis_server, "--port", "0", "--unixsocket", self.socket_path, "--unixsocketperm", "700",
            "--dir", str(self.state_dir), "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "", "--maxmemory-policy", "noeviction", "--daemonize", "no",
            "--logfile", str(self.state_dir / "redis.log"),
        ]  # fmt: skip
        self._redis = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),  # SIGTERM: it flushes its append-only file
        )  # fmt: skip
        self._record()
        self._wait_for_redis()
        self._abandon_interrupted()
        (self.state_dir / "socket").write_text(self.socket_path)
        if self.worker_concurrency:
            self._start_worker()

    def _attach_to_running(self) -> None:
        """Another dms-submit owns the embedded server: use it, if it is up."""
        os.close(self._lock_fd)
        self._lock_fd = -1
        with contextlib.suppress(OSError):
            self.socket_path = (self.state_dir / "socket").read_text().strip()
        if self.worker_concurrency:
            raise EmbeddedError(
                f"another embedded DMS is running a sync (state in {self.state_dir}); wait for it to end, "
                "or run a DMS service (docs/operations.md) to run syncs side by side"
            )
        if not self.socket_path or not os.path.exists(self.socket_path):
            raise EmbeddedError(f"the embedded DMS in {self.state_dir} is starting or stopping; try again")

    def _wait_for_redis(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._redis is not None and self._redis.poll() is not None:
                raise EmbeddedError(
                    f"redis-server exited with status {self._redis.returncode}; see {self.state_dir / 'redis.log'}"
                )
            if os.path.exists(self.socket_path) and answers_on_socket(self.socket_path):
                return
            time.sleep(0.02)
        raise EmbeddedError(f"redis-server did not answer within {self.startup_timeout:.0f} s")

    def _abandon_interrupted(self) -> None:
        """End what a previous embedded run left unfinished, before any worker starts.

        We hold the lock, so nothing can be working on those requests: they were
        interrupted (Ctrl-C, a crash). Left queued, their tasks would run again
        beside the next sync, into destinations nobody is watching. So their
        Celery messages are dropped (this Redis is private: every key outside
        dms:* is Celery's) and the requests end FAILED, saying why.
        """
        from dms.model import TERMINAL_STATES, RequestState
        from dms.state.broker import drop_broker_keys, store_on_socket

        store = store_on_socket(self.socket_path)
        try:
            for row in store.list_requests(limit=1_000_000):
                if RequestState(row["state"]) not in TERMINAL_STATES:
                    store.set_state(
                        row["request_id"],
                        RequestState.FAILED,
                        error="interrupted: the embedded DMS stopped before this request ended; "
                        "`dms-submit resume <id>` finishes it (staged chunks are kept)",
                    )
            drop_broker_keys(store)
        finally:
            store.close()

    def _start_worker(self) -> None:
        env = {**os.environ, **self.environment()}
        env.pop("DMS_CONFIG", None)
        args = [
            sys.executable, "-m", "celery", "-A", "dms", "worker",
            "-Q", worker_queues(), "-c", str(self.worker_concurrency),
            "-n", f"embedded-{os.getpid()}@%h", "--without-mingle", "--without-gossip", "--without-heartbeat",
            "-l", "WARNING", "--logfile", str(self.state_dir / "worker.log"),
        ]  # fmt: skip
        # cwd: `python -m` puts the working directory first on sys.path, and a source
        # checkout there (without the compiled extension) would shadow the installed dms.
        with open(self.state_dir / "worker.log", "ab") as log:  # the banner and warnings, not our stdout
            self._worker = subprocess.Popen(
                args,
                env=env,
                cwd=self.state_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGKILL),  # its pool children die with it (Celery)
            )
        self._record()

    def _record(self) -> None:
        record_started(self.state_dir / "processes", [p for p in (self._redis, self._worker) if p is not None])

    def check_worker(self) -> None:
        """Raise if the embedded worker died (called while waiting for a request)."""
        if self._worker is not None and self._worker.poll() is not None:
            raise EmbeddedError(
                f"the embedded worker exited with status {self._worker.returncode}; see {self.state_dir / 'worker.log'}"
            )

    # -- stop ---------------------------------------------------------------------------
    def close(self) -> None:
        if self._worker is not None:
            # Killed, the whole group at once: we stop after our request ended and was settled
            # (its state, retention and end announced: what finalize has left is acking its
            # message and storing its result), or on Ctrl-C, after which the next start ends
            # the request as "interrupted" and drops Celery's keys anyway. Staged chunks stay
            # for `resume`; nothing is published half-written (renames are atomic). A SIGTERM
            # (Celery's warm shutdown) or SIGQUIT would wait for what is already settled.
            stop_process_group(self._worker, signal.SIGKILL, grace=5.0, whole_group=True)
            self._worker = None
        if self._redis is not None:
            if self._redis.poll() is None and self.socket_path:
                compact_append_only(self.socket_path)  # the next start replays records, not finished plans
            # On SIGTERM redis-server flushes its append-only file and exits cleanly.
            stop_process_group(self._redis, signal.SIGTERM, grace=10.0)
            self._redis = None
        if self._owner:
            for name in ("socket", "processes"):
                with contextlib.suppress(OSError):
                    (self.state_dir / name).unlink()
        if self._socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = ""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers.clear()


def _exit_on(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)
