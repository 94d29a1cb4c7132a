"""The fanned-out walk's Redis state: subtree groups, claims, chunks of rows, done marks.

Why its own store: the walk's keys live and die with one plan run (the planner drops
them when it starts and consumes each chunk as it numbers it), unlike the request's
records, which outlive the request by the retention period.
"""

from __future__ import annotations

import json
from typing import Any

from dms.state.requests import Keys, RequestStore

__all__ = ["CLAIM_SECONDS", "WalkStore"]

#: A walker refreshes its claim at every chunk it writes; one that dies loses it after this.
CLAIM_SECONDS = 60


class WalkStore:
    """Reads and writes of one store's fanned-out walks, keyed by request and group number."""

    def __init__(self, store: RequestStore) -> None:
        self.store = store
        self.r: Any = store.r

    @staticmethod
    def _key(request_id: str, sub: int) -> str:
        return Keys(request_id).walk(sub)

    def set_groups(self, request_id: str, groups: list[list[str]]) -> None:
        for sub, rels in enumerate(groups):
            self.r.set(f"{self._key(request_id, sub)}:dirs", json.dumps(rels))

    def group_dirs(self, request_id: str, sub: int) -> list[str]:
        text = self.r.get(f"{self._key(request_id, sub)}:dirs")
        return [str(d) for d in json.loads(text)] if text else []

    def claim(self, request_id: str, sub: int, owner: str) -> bool:
        """SET NX with a TTL: the first to start a group walks it."""
        return bool(self.r.set(f"{self._key(request_id, sub)}:claim", owner, nx=True, ex=CLAIM_SECONDS))

    def release_claim(self, request_id: str, sub: int) -> None:
        self.r.delete(f"{self._key(request_id, sub)}:claim")

    def write_chunk(self, request_id: str, sub: int, index: int, rows: list[Any]) -> None:
        """Store chunk `index` of a group and keep the walker's claim alive."""
        key = self._key(request_id, sub)
        self.r.set(f"{key}:{index}", json.dumps(rows))
        self.r.expire(f"{key}:claim", CLAIM_SECONDS)

    def mark_done(self, request_id: str, sub: int, chunks: int, owner: str) -> None:
        self.r.hset(self._key(request_id, sub), mapping={"chunks": chunks, "done": 1, "by": owner})

    def is_done(self, request_id: str, sub: int) -> bool:
        return bool(self.r.hget(self._key(request_id, sub), "done") == "1")

    def chunk_count(self, request_id: str, sub: int) -> int:
        return int(self.r.hget(self._key(request_id, sub), "chunks") or 0)

    def take_chunk(self, request_id: str, sub: int, index: int) -> list[Any]:
        """The rows of a chunk, deleted once read: the planner numbers each row once."""
        key = f"{self._key(request_id, sub)}:{index}"
        text = self.r.get(key)
        self.r.delete(key)
        return list(json.loads(text)) if text else []

    def drop(self, request_id: str) -> None:
        """Every key of a request's fanned-out walk (chunks, claims, done marks)."""
        self.store.delete_keys(list(self.r.scan_iter(match=Keys(request_id).pattern("walk:*"), count=1000)))
