"""Show a request's progress: a redrawn block on a terminal, plain lines or JSON elsewhere."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from dms.cli.progress import Progress, ProgressTracker
from dms.sizes import format_size

__all__ = ["ProgressDisplay"]


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressDisplay:
    """Called with every polled record. mode: "tty" (redrawn block), "plain" or "json"
    (one line every `interval` seconds and at every state change)."""

    def __init__(self, request_id: str, out: TextIO, mode: str, interval: float = 5.0) -> None:
        self.request_id = request_id
        self.out = out
        self.mode = mode
        self.interval = interval
        self.tracker = ProgressTracker()
        self._lines_drawn = 0
        self._last_emit = -1e9
        self._last_state = ""

    def __call__(self, info: dict[str, Any]) -> None:
        p = self.tracker.update(info)
        if self.mode == "tty":
            self._draw(p)
            return
        now = time.monotonic()
        if p.state != self._last_state or now - self._last_emit >= self.interval:
            self._last_emit, self._last_state = now, p.state
            emit: Callable[[Progress], str] = self._json if self.mode == "json" else self._plain
            self.out.write(emit(p) + "\n")
            self.out.flush()

    def _json(self, p: Progress) -> str:
        return json.dumps({"request_id": self.request_id, "time": time.time(), **p.as_dict()}, sort_keys=True)

    def _plain(self, p: Progress) -> str:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        total = p.bytes_total if p.planned else "?"  # not known until the walk ends
        return (
            f"{stamp} request={self.request_id} state={p.state} bytes={p.bytes_done}/{total}"
            f" files={p.files_done}/{p.files_total} failed={p.files_failed} tasks={p.tasks_done}/{p.tasks_total}"
            f" rate={format_size(p.rate)}/s eta={_eta(p.eta)}"
        )

    def _draw(self, p: Progress) -> None:
        width = 30
        fraction = p.fraction
        if fraction is None:  # the walk goes on: bytes move, but there is no total to show against
            bar = f"[{'?' * width}]   ...%  {format_size(p.bytes_done)} moved, total not known yet"
        else:
            filled = int(width * fraction)
            bar = (f"[{'#' * filled}{'-' * (width - filled)}] {100 * fraction:5.1f}%  "
                   f"{format_size(p.bytes_done)} / {format_size(p.bytes_total)}")  # fmt: skip
        lines = [
            f"{self.request_id}  {p.state}",
            f"{bar}  {format_size(p.rate)}/s  ETA {_eta(p.eta)}",
            f"files {p.files_done}/{p.files_total} done, {p.files_failed} failed"
            f"   tasks {p.tasks_done}/{p.tasks_total}",
        ]
        up = f"\x1b[{self._lines_drawn}F" if self._lines_drawn else ""
        self.out.write(up + "".join(f"{line}\x1b[K\n" for line in lines))
        self.out.flush()
        self._lines_drawn = len(lines)
