"""Stop a child process and everything it forked, without leaving anything behind.

Used by the embedded mode (redis-server, celery worker) and by the tests. The
child must have been started with start_new_session=True so that it leads its
own process group; Celery's prefork children stay in that group.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["die_with_parent", "group_members", "reap_recorded", "record_started", "start_time", "stop_process_group"]

_PR_SET_PDEATHSIG = 1


def stop_process_group(
    proc: subprocess.Popen[bytes],
    sig: signal.Signals = signal.SIGTERM,
    grace: float = 15.0,
    *,
    whole_group: bool = False,
) -> None:
    """Send `sig` to the leader, wait up to `grace` for it, then SIGKILL whatever is left of the group.

    Only the leader gets `sig`: a Celery worker's warm shutdown (SIGTERM) lets its
    pool children finish their tasks, whereas a signal to the whole group would
    kill the children at once (WorkerLostError for the tasks they were running).
    `whole_group=True` signals every member at once, for when nothing is left to finish.
    """
    with contextlib.suppress(ProcessLookupError):
        if whole_group:
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    for _ in range(100):  # children that outlived the leader; bounded, never a hang
        if next(group_members(proc.pid), None) is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.05)


def die_with_parent(sig: signal.Signals) -> Callable[[], None]:
    """A preexec_fn: the child gets `sig` when the process that started it dies, however it
    dies (SIGKILL included), so a killed dms-submit leaves no service of its own running."""
    parent = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)  # resolved here: the child between fork and exec only calls it

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return arm


def start_time(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (/proc/<pid>/stat field 22): with its
    pid, it names one process for good (a pid alone may be reused). None if it is gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def record_started(path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    """Write the process groups we lead to `path`, for reap_recorded after a crash of ours."""
    rows = [(p.pid, start_time(p.pid)) for p in procs]
    path.write_text("".join(f"{pid} {started}\n" for pid, started in rows if started is not None))


def reap_recorded(path: Path) -> int:
    """Kill what an earlier run recorded in `path` and left running (it was killed before it
    could stop its children, and they outlived it); how many groups were still there."""
    try:
        rows = [line.split() for line in path.read_text().splitlines()]
    except OSError:
        return 0
    reaped = 0
    for pid_text, started_text in (row for row in rows if len(row) == 2):
        pid = int(pid_text)
        if start_time(pid) != int(started_text):
            continue  # gone, or the pid now belongs to another process
        reaped += 1
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)  # redis-server flushes its append-only file on SIGTERM
        for _ in range(200):
            if start_time(pid) != int(started_text) and next(group_members(pid), None) is None:
                break
            if _ > 100:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            time.sleep(0.05)
    with contextlib.suppress(OSError):
        path.unlink()
    return reaped


def group_members(pgid: int) -> Iterator[int]:
    """Live (non-zombie) processes of process group `pgid`."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                yield int(entry)
