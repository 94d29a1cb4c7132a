"""The order in which the planner hands out the chunks of large files: across files, not along one.

Units come out of the chunker file by file: every chunk of the first large file, then every
chunk of the next. Taken in that order, the transfers running at the same time all write into
one file, and a buffered write holds the file's inode lock (ext4's i_rwsem, exclusive) for the
whole copy into the page cache: the writers queue behind each other, and the waiters spin
(figures in docs/performance.md and decision 0024).

So the chunks of a file cut into several are held back and dealt round-robin, one per file per
round, as soon as `width` files (the request's parallelism) have chunks waiting. What cannot be
interleaved is not held: units of whole files go out at once. Held chunks are bounded in number
(`max_held`) and in how many more files the walk hands over while they wait (`max_wait_files`),
and all go at the end of the walk, so a large file never waits long for company that does not
come. The bounds count, never time: a plan that runs again (a redelivered `dms.plan`, the
janitor re-planning for a dead node) must number the same units the same way, because units
already recorded as done are known by their number (docs/architecture.md, "dms.plan").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Interleaver"]

Unit = TypeVar("Unit")


class Interleaver(Generic[Unit]):
    """Hold the units of cut files and emit them round-robin across files."""

    def __init__(self, emit: Callable[[Unit], None], width: int, max_held: int = 256,
                 max_wait_files: int = 1000) -> None:  # fmt: skip
        self._emit = emit
        self._width = max(1, width)
        self._max_held = max(1, max_held)
        self._max_wait_files = max(1, max_wait_files)
        self._held: dict[int, deque[Unit]] = {}  # file -> its chunks, in file order; dicts keep walk order
        self._count = 0
        self._waited = 0  # files walked since a chunk was first held (since the queue was last empty)

    @property
    def held(self) -> int:
        return self._count

    def add(self, unit: Unit, cut_file: int | None) -> None:
        """`cut_file` is the file whose chunk `unit` is, or None for a unit that is not a chunk
        of a cut file (emitted at once)."""
        if cut_file is None:
            self._emit(unit)
            return
        self._held.setdefault(cut_file, deque()).append(unit)
        self._count += 1
        while len(self._held) >= self._width:
            self._round()
        if self._count >= self._max_held:
            self.drain()

    def walked(self) -> None:
        """The walk handed over one more file: held chunks wait for at most `max_wait_files`."""
        if self._count:
            self._waited += 1
            if self._waited >= self._max_wait_files:
                self.drain()

    def drain(self) -> None:
        """Emit everything held, round-robin across files (the end of the walk)."""
        while self._held:
            self._round()

    def _round(self) -> None:
        for file in list(self._held):
            queue = self._held[file]
            self._emit(queue.popleft())
            self._count -= 1
            if not queue:
                del self._held[file]
        if not self._held:
            self._waited = 0
