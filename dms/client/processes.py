"""Stop a child process and everything it forked, without leaving anything behind.

Used by the embedded mode (redis-server, celery worker) and by the tests. The
child must have been started with start_new_session=True so that it leads its
own process group; Celery's prefork children stay in that group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["group_members", "stop_process_group"]


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
