"""The fanned-out walk's Redis state: subtree groups, claims, chunks of rows, done marks.

Why its own store: the walk's keys live and die with one plan run (the planner drops
them when it starts and consumes each chunk as it numbers it), unlike the request's
records, which outlive the request by the retention period.

Every key is under the plan run's token (the holder of the plan lease, dms.state.leases):
a later run of the same plan never reads what an earlier run or its walkers wrote. It
drops those keys when it starts; an earlier run still going then finds a chunk gone, asks
the lease, and learns it was superseded, instead of taking the gap for a shorter walk. A
chunk the planner expects and cannot find otherwise was lost (Redis lost data): that
raises WalkLost, never a silently shorter walk.
"""

from __future__ import annotations

import json
from typing import Any

from dms.state.packed import pack_rows, unpack_rows
from dms.state.requests import Keys, RequestStore

__all__ = ["CLAIM_SECONDS", "KEEP_SECONDS", "ClaimLost", "WalkLost", "WalkStore"]

#: A walker refreshes its claim at every chunk it writes; one that dies loses it after this.
CLAIM_SECONDS = 60
#: Walk keys a run left behind (a walker of a superseded run) expire after this; a run
#: consumes its own chunks well within it.
KEEP_SECONDS = 7 * 24 * 3600


# KEYS[1] claim, KEYS[2] target; ARGV[1] owner, ARGV[2] claim ttl, ARGV[3] keep ttl, then
# either ARGV[4] a chunk's JSON (SET) or ARGV[4..] field/value pairs (HSET). 1 if written;
# 0 if `owner` no longer holds the group's claim (it ran out and another walks the group).
_FENCED_WRITE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[2])
if #ARGV == 4 then
  redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[3])
else
  redis.call('HSET', KEYS[2], unpack(ARGV, 4))
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
return 1
"""


class WalkLost(Exception):
    """A walk chunk the planner needs is gone: the plan must be run again from the start."""


class ClaimLost(Exception):
    """A walker's claim on its group ran out and another walks it: this walker stops."""


class WalkStore:
    """Reads and writes of one plan run's fanned-out walk, keyed by request and group number."""

    def __init__(self, store: RequestStore, run: str) -> None:
        self.store = store
        self.run = run
        self.r: Any = store.r
        self._fenced = self.r.register_script(_FENCED_WRITE)

    def _key(self, request_id: str, sub: int) -> str:
        return Keys(request_id).walk(self.run, sub)

    def set_groups(self, request_id: str, groups: list[list[str]]) -> None:
        for sub, rels in enumerate(groups):
            self.r.set(f"{self._key(request_id, sub)}:dirs", json.dumps(rels), ex=KEEP_SECONDS)

    def group_dirs(self, request_id: str, sub: int) -> list[str] | None:
        """The top-level directories of group `sub`, or None if this run has no such group."""
        text = self.r.get(f"{self._key(request_id, sub)}:dirs")
        return [str(d) for d in json.loads(text)] if text is not None else None

    def claim(self, request_id: str, sub: int, owner: str) -> bool:
        """SET NX with a TTL: the first to start a group walks it."""
        return bool(self.r.set(f"{self._key(request_id, sub)}:claim", owner, nx=True, ex=CLAIM_SECONDS))

    def holds_claim(self, request_id: str, sub: int, owner: str) -> bool:
        return bool(self.r.get(f"{self._key(request_id, sub)}:claim") == owner)

    def release_claim(self, request_id: str, sub: int) -> None:
        self.r.delete(f"{self._key(request_id, sub)}:claim")

    def write_chunk(self, request_id: str, sub: int, index: int, rows: list[Any], owner: str) -> None:
        """Store chunk `index` of a group and keep the walker's claim alive; only while
        `owner` holds the claim (two walkers of one changing subtree would mix chunks)."""
        key = self._key(request_id, sub)
        self._write(key, f"{key}:{index}", owner, [pack_rows(rows)])  # packed: walkers run ahead of the planner

    def mark_done(self, request_id: str, sub: int, chunks: int, owner: str) -> None:
        key = self._key(request_id, sub)
        self._write(key, key, owner, ["chunks", chunks, "done", 1, "by", owner])

    def _write(self, group: str, target: str, owner: str, values: list[Any]) -> None:
        if not self._fenced(keys=[f"{group}:claim", target], args=[owner, CLAIM_SECONDS, KEEP_SECONDS, *values]):
            raise ClaimLost(f"{owner} lost its claim on {group}")

    def is_done(self, request_id: str, sub: int) -> bool:
        return bool(self.r.hget(self._key(request_id, sub), "done") == "1")

    def chunk_count(self, request_id: str, sub: int) -> int:
        return int(self.r.hget(self._key(request_id, sub), "chunks") or 0)

    def take_chunk(self, request_id: str, sub: int, index: int) -> list[Any]:
        """The rows of a chunk, deleted once read: the planner numbers each row once."""
        key = f"{self._key(request_id, sub)}:{index}"
        text = self.r.get(key)
        if text is None:
            raise WalkLost(f"chunk {index} of walk group {sub} (run {self.run}) is gone")
        self.r.delete(key)
        return unpack_rows(text)

    def drop(self, request_id: str) -> None:
        """Every key of every run of a request's fanned-out walk (chunks, claims, done marks)."""
        self.store.delete_keys(list(self.r.scan_iter(match=Keys(request_id).pattern("walk:*"), count=1000)))
