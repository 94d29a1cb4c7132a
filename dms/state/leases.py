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
its lease ran out finds, at its next write, that it was superseded, and stops.

What is left: `check` and the write after it are two commands, so a run stopped exactly
between them for longer than LEASE_SECONDS writes once more after it lost the lease. The
plan's writes are deterministic for an unchanged tree, so that write holds what the new
holder writes too.
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

# KEYS[1] lease; ARGV[1] token, ARGV[2] ttl ms. 1 if the token holds the lease (renewed), else 0.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
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
        self.key = Keys(request_id).plan_lease
        self.token = token or uuid.uuid4().hex[:12]
        self.renewed = 0.0  # monotonic time of the last successful acquire or renew
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def acquire(self) -> bool:
        """Take the lease if nobody holds it (or this run does already)."""
        if self.r.set(self.key, self.token, nx=True, ex=LEASE_SECONDS) or self.r.get(self.key) == self.token:
            self.renewed = time.monotonic()
            return True
        return False

    def holder(self) -> str | None:
        value = self.r.get(self.key)
        return str(value) if value is not None else None

    def check(self) -> None:
        """Before a write: raise PlanSuperseded if this run no longer holds the lease.
        Renews it when the last renewal is more than RENEW_SECONDS old, so a run that
        was stopped for a while asks Redis before it writes again."""
        if time.monotonic() - self.renewed < RENEW_SECONDS:
            return
        if not self._renew(keys=[self.key], args=[self.token, LEASE_SECONDS * 1000]):
            raise PlanSuperseded(f"plan lease {self.key} is no longer held by run {self.token}")
        self.renewed = time.monotonic()

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.token])

    @staticmethod
    def break_lease(store: RequestStore, request_id: str) -> None:
        """Drop whoever holds the lease: the janitor found its holder gone."""
        store.r.delete(Keys(request_id).plan_lease)
