"""Say so when no worker takes a request that a command waits on.

`sync --wait` against a broker that no worker consumes would otherwise wait, silent, for
ever: the request stays PENDING with its plan message in the control queue. After
UNTAKEN_SECONDS, if that message is still queued, one warning on stderr names the queue and
the command that serves it. The command keeps waiting, since a worker may be on its way
(a supervisor restarting it, a Slurm job not started yet).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TextIO

from dms.fs.names import printable
from dms.state.requests import RequestStore

__all__ = ["UNTAKEN_SECONDS", "UntakenWarning", "both"]

#: How long a request may sit PENDING with its plan message queued before the warning.
UNTAKEN_SECONDS = float(os.environ.get("DMS_UNTAKEN_SECONDS", "30"))
#: Seconds between two looks at the queue once the request is old enough.
LOOK_EVERY = 5.0


class UntakenWarning:
    """An on_progress callback for dms.client.submit.wait: warns once, then stays quiet."""

    def __init__(self, store: RequestStore, request_id: str, out: TextIO, after: float = UNTAKEN_SECONDS) -> None:
        self.store, self.request_id, self.out, self.after = store, request_id, out, after
        self.started = time.monotonic()
        self.next_look = self.started + after
        self.warned = False

    def __call__(self, info: dict[str, Any]) -> None:
        if self.warned or info.get("state") != "PENDING" or time.monotonic() < self.next_look:
            return
        self.next_look = time.monotonic() + LOOK_EVERY
        queue = self.store.params(self.request_id).control_queue
        if not any(self.request_id in message for message in self.store.queued_messages(queue)):
            return  # a worker took it; planning just has not begun to show
        self.warned = True
        waited = time.monotonic() - self.started
        self.out.write(
            f"warning: no worker has taken request {printable(self.request_id)} in {waited:.0f} s: its plan is "
            f"still queued on {printable(queue)}. Start a worker that consumes it (`dms-worker NODE`, or "
            f"`celery -A dms worker -Q {printable(queue)},dms.data`). Still waiting; Ctrl-C leaves it queued.\n"
        )
        self.out.flush()


def both(*callbacks: Callable[[dict[str, Any]], None] | None) -> Callable[[dict[str, Any]], None]:
    """One on_progress callback that calls each of `callbacks` given (None: skipped)."""
    given = [c for c in callbacks if c is not None]

    def call(info: dict[str, Any]) -> None:
        for callback in given:
            callback(info)

    return call
