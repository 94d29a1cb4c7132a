"""Rate and ETA of a request, from successive snapshots of its counters in Redis."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from dms.model import TERMINAL_STATES, RequestState

__all__ = ["Progress", "ProgressTracker"]


@dataclass(frozen=True)
class Progress:
    state: str
    bytes_done: int  # includes bytes moved by units still running
    bytes_total: int
    files_done: int
    files_failed: int
    files_total: int
    tasks_done: int
    tasks_total: int
    rate: float  # bytes/s over the recent window
    eta: float | None  # seconds, None while unknown
    planned: bool = True  # False while the walk goes on: the totals are not known yet

    @property
    def fraction(self) -> float | None:
        """Of the bytes to move, how much moved; None until the plan knows the total (transfers
        run while the walk goes on, so bytes move before there is a total to compare with)."""
        if not self.planned:
            return None
        return self.bytes_done / self.bytes_total if self.bytes_total else 1.0

    def as_dict(self) -> dict[str, Any]:
        fraction = self.fraction
        return {**self.__dict__, "fraction": None if fraction is None else round(fraction, 4)}


class ProgressTracker:
    """Feed it request records; it keeps a few seconds of samples to compute a current rate."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self.samples: deque[tuple[float, int]] = deque()

    def update(self, info: dict[str, Any], now: float | None = None) -> Progress:
        now = time.monotonic() if now is None else now
        planned = bool(info.get("planned")) or RequestState(info["state"]) in TERMINAL_STATES
        moved = info["bytes_done"] + info.get("bytes_inflight", 0)
        done = min(moved, info["bytes_total"]) if planned else moved
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window:
            self.samples.popleft()
        t0, b0 = self.samples[0]
        rate = (done - b0) / (now - t0) if now > t0 else 0.0
        remaining = info["bytes_total"] - done
        eta = None if not planned else remaining / rate if rate > 0 else (0.0 if remaining <= 0 else None)
        return Progress(
            state=info["state"],
            bytes_done=done,
            bytes_total=info["bytes_total"],
            files_done=info["files_done"],
            files_failed=info["files_failed"],
            files_total=info["files_total"],
            tasks_done=info["tasks_done"],
            tasks_total=info["tasks_total"],
            rate=max(rate, 0.0),
            eta=eta,
            planned=planned,
        )
