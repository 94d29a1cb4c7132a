"""The plan lease: at most one run of a request's plan writes its plan at a time.

Why: a plan message can run twice at once. Around a Redis restart the consumer of the
worker that plans puts its unacked messages back while the plan is still running, and the
janitor publishes a plan again when it thinks the planner is gone. Two runs of a plan
were meant to be harmless (planning is deterministic), but the second run starts the
fanned-out walk afresh and deletes what the first is still reading, and a tree that
changes between the two walks gives two different numberings of the same file ids. Both
runs then wrote shards and units, and a request could end SUCCEEDED with files missing.

So a run holds a lease (a key with the run's token and a TTL) while it writes, renews it
as it goes, and checks before each write that it still holds it (`check`). A run that
finds another holder waits (dms.plan retries later); a holder that stalled so long that
another run took its lease finds, at its next write, that it was superseded, and stops.
A lease that only ran out (nobody took it) is taken back by its holder: every acquisition
is counted in the request's `plan_runs`, and an unchanged count proves nobody came.

What is left: `check` and the write after it are two commands, so a run stopped exactly
between them for longer than LEASE_SECONDS, while another run takes over, writes once more
after it lost the lease. The run that took over starts the plan over under a new epoch
(dms.tasks.plan), a transfer's record is fenced by the epoch (RequestStore.record_unit),
and finalize verifies every chunk of every file of the new plan, so such a late write can
fail files (a chunk never copied, a digest that does not match) but never make a missing
one count as copied.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from dms.state.requests import Keys, RequestStore

__all__ = ["LEASE_SECONDS", "PlanLease", "PlanSuperseded"]

#: A holder that has not renewed its lease for this long has lost it (tests shorten it).
LEASE_SECONDS = max(2, int(os.environ.get("DMS_PLAN_LEASE_SECONDS", "60")))
#: A holder renews (and checks) its lease at a write at most this often.
RENEW_SECONDS = min(2.0, LEASE_SECONDS / 4)

# Every acquisition counts in the request's `plan_runs`: a run remembers the count it got,
# so a lease that merely ran out (nobody else took it: the count is unchanged) is taken
# back by its holder, while one that another run took in between (the count moved) is not.
# KEYS[1] lease, KEYS[2] request hash; ARGV[1] token, ARGV[2] ttl ms. The new count, or 0.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('HINCRBY', KEYS[2], 'plan_runs', 1)
end
return 0
"""
# KEYS[1] lease, KEYS[2] request hash; ARGV[1] token, ARGV[2] ttl ms, ARGV[3] this run's
# count. 1 if this run holds the lease (renewed, or taken back untouched), else 0.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder and redis.call('HGET', KEYS[2], 'plan_runs') == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# KEYS[1] lease; ARGV[1] token. Deletes the lease only if the token holds it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class PlanSuperseded(Exception):
    """This run of a plan lost its lease to another run: it must write nothing more."""


class PlanLease:
    """One run's hold on the plan of one request."""

    def __init__(self, store: RequestStore, request_id: str, token: str | None = None) -> None:
        client: Any = store.r
        self.r = client
        keys = Keys(request_id)
        self.key, self.request_key = keys.plan_lease, keys.req
        self.token = token or uuid.uuid4().hex[:12]
        self.run = 0  # the request's plan_runs count this run's acquisition made
        self.renewed = 0.0  # monotonic time of the last successful acquire or renew
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def acquire(self) -> bool:
        """Take the lease if nobody holds it."""
        self.run = int(self._acquire(keys=[self.key, self.request_key], args=[self.token, LEASE_SECONDS * 1000]))
        if self.run:
            self.renewed = time.monotonic()
        return bool(self.run)

    def holder(self) -> str | None:
        value = self.r.get(self.key)
        return str(value) if value is not None else None

    def check(self) -> None:
        """Before a write (and as the walk goes on): raise PlanSuperseded if another run has
        taken the lease. Renews it when the last renewal is more than RENEW_SECONDS old, so
        a run that was stopped for a while asks Redis before it writes again; a lease that
        ran out while nobody else took it (a long stretch with nothing to write, a slow
        file system, Redis down) is taken back."""
        if time.monotonic() - self.renewed < RENEW_SECONDS:
            return
        args = [self.token, LEASE_SECONDS * 1000, self.run]
        if not self._renew(keys=[self.key, self.request_key], args=args):
            raise PlanSuperseded(f"plan lease {self.key} was taken from run {self.token} by another run")
        self.renewed = time.monotonic()

    def held(self) -> bool:
        """Whether this run still holds the lease (or could take it back), asking Redis now."""
        self.renewed = 0.0
        try:
            self.check()
        except PlanSuperseded:
            return False
        return True

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.token])

    @staticmethod
    def break_lease(store: RequestStore, request_id: str) -> None:
        """Drop whoever holds the lease: the janitor found its holder gone."""
        store.r.delete(Keys(request_id).plan_lease)
