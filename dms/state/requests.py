"""Request state in Redis: the key schema and every read and write of it.

One request, id R, owns these keys (documented in docs/architecture.md):

    dms:requests                 zset   request id -> creation time (for `list`)
    dms:req:R                    hash   params, state, counters, timestamps, error
    dms:req:R:errors             list   per-file errors, newest first, capped at ERRORS_CAP
    dms:req:R:events             list   the request's event log, oldest first, capped at EVENTS_CAP
    dms:req:R:dirs:S             string DirRecord rows (dms.state.packed: JSON, Zstandard-compressed)
    dms:req:R:links:S            string LinkRecord rows (symlinks, hard links), packed
    dms:req:R:names:S            string [dir relpath, [names]] rows (for --delete), packed
    dms:req:R:dryrun             list   "copy|update|delete|link <path>" lines of a dry run, or with -i
                                        the itemized changes (dms.plan.itemize), of a dry run or not
    dms:req:R:carry              hash   relpath -> [size, mtime_ns, {offset: "len:digest"}] of files a
                                        failed or interrupted run left partly staged (for resume)
    dms:req:R:unit:K             string UnitPiece rows of transfer unit K (each with its file's
                                        record), packed; dropped when the unit is recorded
    dms:req:R:unit:K:about       string one line saying what unit K moves (Flower's argsrepr); as unit:K
    dms:req:R:digests:S          hash   finalize's work in file shard S (file ids S*SHARD ...), first
                                        write wins: "file_id:offset" -> "length:digest" of each chunk
                                        of a file no transfer published, and "file_id" -> its record
                                        (FileRecord JSON). Files their transfer published have nothing
    dms:req:R:failed:S           hash   file_id -> error JSON (first write wins)
    dms:req:R:units_done         bitmap bit K set when unit K has been recorded
    dms:req:R:dispatched         bitmap bit K set once unit K was published to a queue
    dms:req:R:published          bitmap bit F set once file F was renamed into place
    dms:req:R:inflight           hash   unit -> bytes moved so far by its running transfer
    dms:req:R:running            hash   unit -> "<claim> <seconds>": who runs it (incarnation/pid, or
                                        "queued" once the janitor published it again) and the Redis
                                        time its byte counter last moved
    dms:req:R:cancel             string present when a cancel was asked for
    dms:req:R:chain              string the caller's Celery chain, re-dispatched by finalize
    dms:req:R:ended              channel (pub/sub, not a key) the terminal state, published as it is set
    dms:req:R:finalize_lock      string held by the finalize task that is running
    dms:req:R:plan_lease         string the token of the plan run that may write the plan (dms.state.leases)
    dms:req:R:walk:T:G...        the fanned-out walk of plan run T, group G (dms.state.walks)
    dms:req:R:still              hash   the stand-still watch's progress mark and since when (1 day TTL)
    dms:req:R:files_from         string the --files-from paths, NUL-separated bytes, zlib-compressed
    dms:req:R:strays             list   what copies of a unit that lost wrote (dms.finalize.strays
                                        blobs): finalize removes their staging files as the request ends

No value grows with the size of the tree beyond a shard (SHARD files) or a
unit (unit_max_files pieces); counters are updated by Lua scripts so a task
that runs twice (redelivery) counts once. What the plan holds per file is the
manifests of units not yet done, and the records and digests of files finalize
has still to publish: a tree of small files that their transfers published
leaves about a bit per file (decision 0036, docs/scale.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dms.errors import BrokerUnavailable, RequestError, RequestExists, UnitGone
from dms.fs.filters import RuleSet
from dms.fs.names import pack_names, printable, shown, unpack_names
from dms.model import (
    TERMINAL_STATES,
    DirRecord,
    EndReason,
    FailedPiece,
    FileRecord,
    LinkRecord,
    RecordedPiece,
    RequestState,
    SyncParams,
    UnitPiece,
)
from dms.settings import redacted
from dms.state.packed import pack_rows, unpack_rows

if TYPE_CHECKING:  # redis-py is imported where it is used: a client process may not load it (dms.state.resp)
    import redis

    from dms.state.resp import RespClient

__all__ = [
    "ERRORS_CAP",
    "EVENTS_CAP",
    "REQUESTS_INDEX",
    "RETENTION_SECONDS",
    "SHARD",
    "EndSignal",
    "Keys",
    "RequestStore",
    "UnitProgress",
    "connect",
]

SHARD = 1000
ERRORS_CAP = 1000
EVENTS_CAP = 2000
REQUESTS_INDEX = "dms:requests"
#: How long an ended request's state stays in Redis (docs/operations.md, "Retention").
RETENTION_SECONDS = int(os.environ.get("DMS_RETENTION_SECONDS", str(7 * 24 * 3600)))
_INT_FIELDS = (
    "files_total",
    "files_done",
    "files_failed",
    "bytes_total",
    "bytes_done",
    "bytes_carried",
    "tasks_total",
    "tasks_done",
    "dirs_total",
    "skipped",
    "files_uptodate",
    "bytes_uptodate",
    "file_shards",
    "dir_shards",
    "links_total",
    "link_shards",
    "name_shards",
    "excluded",
    "deleted",
    "listed_missing",
)

#: At most this many lines of a dry run's report are kept (the counts are exact).
DRYRUN_CAP = 100_000


#: A Redis restart (AOF reload, a supervisor's restart delay) takes seconds to a minute or two:
#: every command retries this long before failing.
RETRY_SECONDS = float(os.environ.get("DMS_REDIS_RETRY_SECONDS", "120"))


def connect(url: str, *, timeout: float = 30.0) -> redis.Redis:
    """A redis-py client for the state store, failing fast when it is unreachable at first,
    and riding out a restart later (each command retries with backoff for RETRY_SECONDS).

    All state writes are idempotent (first-write-wins Lua, HSET of totals), so a command
    retried after a lost reply does no harm."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    retries = max(1, int(RETRY_SECONDS / 0.5))
    client = redis.Redis.from_url(
        url, decode_responses=True, socket_connect_timeout=5, socket_timeout=timeout, health_check_interval=25,
        encoding_errors="surrogateescape",  # file names are bytes: they go in and come back as they were
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError, ConnectionError],
    )  # fmt: skip
    probe = redis.Redis.from_url(
        url, socket_connect_timeout=5, socket_timeout=timeout, retry=Retry(ExponentialBackoff(), 0)
    )
    deadline = time.monotonic() + RETRY_SECONDS
    try:
        while True:
            try:
                probe.ping()  # at first contact, fail fast: "Redis is not there" is an answer
                break
            except redis.BusyLoadingError:  # it is there, loading its data after a restart: wait for it
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise BrokerUnavailable(f"cannot reach the DMS Redis at {redacted(url)}: {exc}") from exc
    finally:
        probe.close()
    return client


class Keys:
    """Key names of one request; see the module docstring."""

    def __init__(self, request_id: str) -> None:
        self.base = f"dms:req:{request_id}"
        self.req = self.base
        self.errors = f"{self.base}:errors"
        self.events = f"{self.base}:events"
        self.units_done = f"{self.base}:units_done"
        self.dispatched = f"{self.base}:dispatched"
        self.published = f"{self.base}:published"
        self.inflight = f"{self.base}:inflight"
        self.running = f"{self.base}:running"
        self.cancel = f"{self.base}:cancel"
        self.chain = f"{self.base}:chain"
        self.ended = f"{self.base}:ended"  # pub/sub channel: the terminal state, once
        self.dryrun = f"{self.base}:dryrun"
        self.carry = f"{self.base}:carry"
        self.routes = f"{self.base}:routes"
        self.finalize_lock = f"{self.base}:finalize_lock"
        self.plan_lease = f"{self.base}:plan_lease"
        self.still = f"{self.base}:still"  # the stand-still watch's last progress mark and since when
        self.files_from = f"{self.base}:files_from"  # the --files-from list (listed_paths)
        self.strays = f"{self.base}:strays"  # what losing copies of units wrote (note_strays)
        self.in_flight_scratch = f"{self.base}:in_flight_scratch"  # units_in_flight's BITOP target, deleted at once

    def walk(self, run: str, sub: int) -> str:
        """Keys of walk group `sub` of plan run `run` start with this."""
        return f"{self.base}:walk:{run}:{sub}"

    def pattern(self, suffix: str) -> str:
        """A SCAN pattern for this request's keys `<base>:<suffix>`: the id taken literally
        (its glob characters escaped, should an id ever hold one), `suffix` as a glob."""
        literal = "".join(f"\\{c}" if c in "*?[]\\" else c for c in self.base)
        return f"{literal}:{suffix}"

    def dirs(self, shard: int) -> str:
        return f"{self.base}:dirs:{shard}"

    def unit(self, index: int) -> str:
        return f"{self.base}:unit:{index}"

    def unit_description(self, index: int) -> str:
        return f"{self.base}:unit:{index}:about"

    def links(self, shard: int) -> str:
        return f"{self.base}:links:{shard}"

    def names(self, shard: int) -> str:
        return f"{self.base}:names:{shard}"

    def digests(self, shard: int) -> str:
        return f"{self.base}:digests:{shard}"

    def failed(self, shard: int) -> str:
        return f"{self.base}:failed:{shard}"


@dataclass(frozen=True)
class UnitProgress:
    """What record_unit saw, atomically: enough to decide who dispatches finalize."""

    first: bool
    tasks_done: int
    tasks_total: int
    planned: bool
    finalize_sent: bool
    failed_new: int = 0  # failures recorded by this call (not seen before)
    #: nothing was recorded: the request has ended, or is another incarnation now. Its
    #: lanes are not this task's to advance.
    ended: bool = False

    @property
    def all_done(self) -> bool:
        return self.planned and self.tasks_done >= self.tasks_total


# Records a unit's outcome once: digests, failures and the file records finalize needs are
# first-write-wins, and the counters move only for what was new, so a redelivered task
# counts once; the first record of a unit drops its manifest (KEYS[6], KEYS[7]).
# ARGV[1] is the unit index, or "" to record what belongs to no unit (finalize's
# verification and publish failures, chunks a resume carried over). ARGV[6] is how many
# file records follow the digests and failures, ARGV[7] the bytes of the files the unit
# published itself (counted as done; they keep no digest). Nothing is recorded into a request
# that has ended: a task that woke up after its request ended (a hung node) may have
# passed its own check just before, and finalize has dropped the digests it would
# count as new. Nor into a request that does not exist: Redis lost its data while the
# task ran, and what it wrote would be taken by a resubmission under the same id as
# its own (a unit marked done that the new plan never copied).
_RECORD_UNIT = """
local req = KEYS[1]
local state = redis.call('HGET', req, 'state')
local epoch = redis.call('HGET', req, 'epoch')
local stale = ARGV[5] ~= '' and epoch and epoch ~= ARGV[5]
if stale or not state or state == 'SUCCEEDED' or state == 'FAILED' or state == 'CANCELLED' then
  local v = redis.call('HMGET', req, 'tasks_done', 'tasks_total', 'planned', 'finalize_sent')
  return {0, tonumber(v[1] or '0'), tonumber(v[2] or '-1'), v[3] or '', v[4] or '', 0, 1}
end
local first = false
if ARGV[1] ~= '' then
  first = redis.call('SETBIT', KEYS[2], ARGV[1], 1) == 0
  redis.call('HDEL', KEYS[4], ARGV[1])
  redis.call('HDEL', KEYS[5], ARGV[1])
end
local n_ok, n_failed, cap = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local n_records, bytes = tonumber(ARGV[6]), 0
if ARGV[1] ~= '' and not first then
  -- another copy of this unit recorded it first: that record is the unit's outcome; this
  -- copy's failures (ESTALE: the first copy published the file under it) must not count
  n_ok, n_failed, n_records = 0, 0, 0
end
if first then
  bytes = tonumber(ARGV[7])  -- the bytes of the files this unit published (no digest kept)
  redis.call('DEL', KEYS[6], KEYS[7])  -- its manifest: the plan holds only units not yet done
end
local i = 8
for j = 1, n_ok do
  if redis.call('HSETNX', KEYS[tonumber(ARGV[i])], ARGV[i+1], ARGV[i+2]) == 1 then
    bytes = bytes + tonumber(ARGV[i+3])
  end
  i = i + 4
end
local failed_new = 0
for j = 1, n_failed do
  if redis.call('HSETNX', KEYS[tonumber(ARGV[i])], ARGV[i+1], ARGV[i+2]) == 1 then
    failed_new = failed_new + 1
    redis.call('LPUSH', KEYS[3], ARGV[i+2])
  end
  i = i + 3
end
for j = 1, n_records do
  redis.call('HSETNX', KEYS[tonumber(ARGV[i])], ARGV[i+1], ARGV[i+2])
  i = i + 3
end
if failed_new > 0 then
  redis.call('LTRIM', KEYS[3], 0, cap - 1)
  redis.call('HINCRBY', req, 'files_failed', failed_new)
end
if bytes > 0 then redis.call('HINCRBY', req, 'bytes_done', bytes) end
local done
if first then
  done = redis.call('HINCRBY', req, 'tasks_done', 1)
else
  done = tonumber(redis.call('HGET', req, 'tasks_done') or '0')
end
local v = redis.call('HMGET', req, 'tasks_total', 'planned', 'finalize_sent')
return {first and 1 or 0, done, tonumber(v[1] or '-1'), v[2] or '', v[3] or '', failed_new, 0}
"""

# A running unit's byte counter (KEYS[1]) and its claim with the Redis time it was written
# (KEYS[2]): one clock for every node, so the janitor's "has not moved for stall_timeout"
# does not depend on the hosts' clocks agreeing.
_REPORT_INFLIGHT = """
local t = redis.call('TIME')
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3] .. ' ' .. t[1])
return tonumber(t[1])
"""

# Moves a request to a new state unless it already ended: a late duplicate
# task must never turn a SUCCEEDED request back into TRANSFERRING. ARGV[1] is the
# channel to announce the end on ("" when the new state is not terminal), so a
# waiter wakes in the same moment the state is written, not at its next poll.
_SET_STATE = """
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return -1 end
if cur == 'SUCCEEDED' or cur == 'FAILED' or cur == 'CANCELLED' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], ARGV[3]) end
return 1
"""


# Ends a request no plan run is working on and no unit was sent for (PENDING or PLANNING, no
# plan lease, nothing in `dispatched`): its plan message waits in a queue nobody consumes, or
# its plan failed without saying so. Nothing was staged, so nothing is left to finalize. A
# plan run that takes the lease afterwards finds the request ended and does nothing.
# ARGV: now, the error, the end reason. 1 if ended.
_CANCEL_UNSTARTED = """
local cur = redis.call('HGET', KEYS[1], 'state')
if cur ~= 'PENDING' and cur ~= 'PLANNING' then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('BITCOUNT', KEYS[3]) > 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'CANCELLED', 'error', ARGV[2], 'end_reason', ARGV[3],
           'updated_at', ARGV[1], 'finished_at', ARGV[1], 'settled', 1)
redis.call('DEL', KEYS[5])  -- the cancel mark: nothing is left to see it
redis.call('PUBLISH', KEYS[4], 'CANCELLED')
return 1
"""


# Takes a lock for ARGV[1] for ARGV[2] seconds unless another owner holds it; 1 if taken.
_TAKE_LOCK = """
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


# Keeps a losing copy's description of what it wrote (ARGV[1]) for finalize to remove, unless
# the request ended SUCCEEDED or CANCELLED already (0: the caller has it removed now) or is
# gone (-1). One script, so that finalize, which takes the list after it sets the end state,
# sees every description kept before that moment, and no description is kept after it. A
# FAILED request keeps it: its staging files wait for `resume`, whose finalize removes them.
_NOTE_STRAYS = """
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return -1 end
if cur == 'SUCCEEDED' or cur == 'CANCELLED' then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end  -- a FAILED request's retention
return 1
"""


# Sets each file's published bit and counts only the bits that were not set yet; not in a
# request that has ended or does not exist (as _RECORD_UNIT: a task that woke up late, or
# outlived Redis's data, records nothing).
_MARK_PUBLISHED = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'SUCCEEDED' or state == 'FAILED' or state == 'CANCELLED' then return 0 end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if ARGV[1] ~= '' and epoch and epoch ~= ARGV[1] then return 0 end
local new = 0
for i = 2, #ARGV do
  if redis.call('SETBIT', KEYS[2], ARGV[i], 1) == 0 then new = new + 1 end
end
if new > 0 then redis.call('HINCRBY', KEYS[1], 'files_done', new) end
return new
"""


# Marks that a unit's message (ARGV[2] its index) or the finalize message (ARGV[2] '') was
# published, for the incarnation ARGV[1] (an epoch, or '' for whichever is current): nothing
# if the request does not exist or is another incarnation now. Why fenced: a task of the old
# incarnation that published its lane's next unit just as the plan started over would
# otherwise set the bit in the new incarnation's bitmap (dropped and made anew by then), and
# the new lane would never publish that unit: its old-epoch message runs as stale and
# advances nothing, so the lane waits for good.
_MARK_SENT = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not redis.call('HGET', KEYS[1], 'state') then return 0 end
if ARGV[1] ~= '' and epoch and epoch ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('HSET', KEYS[1], 'finalize_sent', 1) else redis.call('SETBIT', KEYS[2], ARGV[2], 1) end
return 1
"""


# How long a request's progress has stood still (KEYS: the request hash, its inflight and
# running hashes, the watch's own hash): the mark is its units and bytes done and every
# running unit's byte counter and claim clock, so any unit recorded or byte moved anywhere
# restarts the clock. Returns 0 unless it stood still for at least ARGV[1] s; then the
# seconds, and the clock restarts (the caller acts once per stand-still). Redis's clock.
_STOOD_STILL = """
local now = tonumber(redis.call('TIME')[1])
local v = redis.call('HMGET', KEYS[1], 'tasks_done', 'bytes_done', 'epoch')
local mark = (v[1] or '') .. ':' .. (v[2] or '') .. ':' .. (v[3] or '')
for _, x in ipairs(redis.call('HVALS', KEYS[2])) do mark = mark .. ',' .. x end
for _, x in ipairs(redis.call('HVALS', KEYS[3])) do mark = mark .. ';' .. x end
local old = redis.call('HMGET', KEYS[4], 'mark', 'since')
if old[1] ~= mark or not old[2] then
  redis.call('HSET', KEYS[4], 'mark', mark, 'since', now)
  redis.call('EXPIRE', KEYS[4], 86400)
  return 0
end
local still = now - tonumber(old[2])
if still < tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[4], 'since', now)
return still
"""


# The offsets of the set bits in bytes ARGV[1]..ARGV[2] of a bitmap, counted from the first
# bit of that range (Redis numbers bits from the high bit of each byte). Done server side:
# the client decodes replies as text, and a bitmap is not.
_SET_BITS = """
local s = redis.call('GETRANGE', KEYS[1], ARGV[1], ARGV[2])
local out = {}
for i = 1, #s do
  local b = string.byte(s, i)
  if b ~= 0 then
    for j = 0, 7 do
      if bit.band(b, bit.rshift(128, j)) ~= 0 then out[#out + 1] = (i - 1) * 8 + j end
    end
  end
end
return out
"""


class EndSignal:
    """A subscription to one request's end (the Keys.ended channel) for a waiter to sleep on.

    Subscribed before the waiter's first read of the state, so an end that lands between
    a read and the next sleep is still heard. It only shortens sleeps: the state in the
    hash stays the authority, and any error of the client (redis-py's or dms.state.resp's, which
    share no exception class) turns it into a plain time.sleep.
    """

    def __init__(self, client: Any, channel: str) -> None:
        self._pubsub: Any = None
        try:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(channel)
            self._pubsub = pubsub
        except Exception:  # best effort, see the docstring
            pass

    def sleep(self, seconds: float) -> None:
        """Return after `seconds`, or as soon as the request's end is published."""
        deadline = time.monotonic() + seconds
        if self._pubsub is not None:
            try:
                while (left := deadline - time.monotonic()) > 0:
                    if self._pubsub.get_message(timeout=left) is not None:
                        return
                return
            except Exception:  # best effort, see the docstring
                self.close()
        time.sleep(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                self._pubsub.close()
            self._pubsub = None

    def __enter__(self) -> EndSignal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class RequestStore:
    """All reads and writes of request state; tasks and the CLI go through here."""

    def __init__(self, client: redis.Redis | RespClient) -> None:
        # Typed as Any: redis-py's annotations cannot express decode_responses=True
        # (every reply would be `bytes | str`), and this client always decodes. A client
        # process passes dms.state.resp's RespClient, which answers like redis-py.
        self.r: Any = client
        self._record_unit = client.register_script(_RECORD_UNIT)
        self._set_bits = client.register_script(_SET_BITS)
        self._set_state = client.register_script(_SET_STATE)
        self._mark_published = client.register_script(_MARK_PUBLISHED)
        self._mark_sent = client.register_script(_MARK_SENT)
        self._stood_still = client.register_script(_STOOD_STILL)
        self._report_inflight = client.register_script(_REPORT_INFLIGHT)
        self._note_strays = client.register_script(_NOTE_STRAYS)
        self._cancel_unstarted = client.register_script(_CANCEL_UNSTARTED)
        self._take_lock = client.register_script(_TAKE_LOCK)

    def close(self) -> None:
        self.r.close()

    # -- lifecycle -----------------------------------------------------------------
    def create(self, params: SyncParams) -> None:
        keys = Keys(params.request_id)
        now = time.time()
        # Keys under this id from before (a task that outlived Redis's data wrote its bits there):
        # the hash, or any key a task writes by name; sharded keys come with one of these.
        leftovers = bool(self.r.exists(keys.req, keys.units_done, keys.dispatched, keys.published, keys.inflight,
                                       keys.cancel, keys.routes, keys.finalize_lock))  # fmt: skip
        created = self.r.hsetnx(keys.req, "params", params.to_json())
        if not created:
            current = self.r.hget(keys.req, "state") or "unknown"
            raise RequestExists(f"request id {params.request_id!r} is already in use (state {current})")
        if leftovers:
            self._drop_leftovers(params.request_id)
        fields: dict[str, Any] = {"state": RequestState.PENDING.value, "created_at": now, "updated_at": now,
                                  "epoch": params.epoch, "base_epoch": params.epoch}  # fmt: skip
        fields.update({name: 0 for name in _INT_FIELDS})
        if params.files_from:  # before the record: a plan that reads it finds it
            self.r.set(keys.files_from, pack_names(map(os.fsencode, params.files_from)))
        self.r.hset(keys.req, mapping=fields)
        self.r.zadd(REQUESTS_INDEX, {params.request_id: now})

    def _drop_leftovers(self, request_id: str) -> None:
        """Delete what a request id's keys held before create() gave it params: writes of tasks
        that outlived Redis's data (a restart without persistence), such as the dispatched bit
        a lane's last task set as Redis came back empty, which would keep a resubmission's lane
        from ever starting that unit. Rare, so a SCAN of the id's keys is affordable here."""
        keys = Keys(request_id)
        self.delete_keys(list(self.r.scan_iter(match=keys.pattern("*"), count=1000)))
        fields = [f for f in self.r.hkeys(keys.req) if f != "params"]
        if fields:
            self.r.hdel(keys.req, *fields)

    def exists(self, request_id: str) -> bool:
        return bool(self.r.exists(Keys(request_id).req))

    def params(self, request_id: str) -> SyncParams:
        text = self.r.hget(Keys(request_id).req, "params")
        if text is None:
            raise RequestError(f"no such request: {request_id!r}")
        return SyncParams.from_json(text)

    def get(self, request_id: str) -> dict[str, Any] | None:
        """The request record, with `bytes_inflight`: bytes moved by units still running."""
        keys = Keys(request_id)
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(keys.req)
        pipe.hvals(keys.inflight)
        raw, inflight = pipe.execute()
        if not raw:
            return None
        record = _decode_request(raw)
        record["bytes_inflight"] = sum(int(v) for v in inflight)
        return record

    def live_params(self, request_id: str, epoch: int) -> SyncParams | None:
        """The request's parameters if it exists, has not ended and is in incarnation `epoch`;
        None otherwise. What a task checks before it acts (and again before it records)."""
        state, text = self.r.hmget(Keys(request_id).req, "state", "params")
        if not state or not text or RequestState(state) in TERMINAL_STATES:
            return None
        params = SyncParams.from_json(text)
        return params if params.epoch == epoch else None

    def state(self, request_id: str) -> RequestState | None:
        value = self.r.hget(Keys(request_id).req, "state")
        return RequestState(value) if value else None

    def set_state(self, request_id: str, state: RequestState, *, announce: bool = True, **fields: Any) -> bool:
        """Set the state (and fields) unless the request already ended; True if it moved.

        A terminal state is announced to waiters (Keys.ended) in the same script, unless
        `announce` is False: finalize writes the state first (so late tasks record nothing),
        settles the request's keys, and then calls announce_end itself."""
        now = time.time()
        values: dict[str, Any] = {"state": state.value, "updated_at": now, **fields}
        keys = Keys(request_id)
        argv: list[Any] = [keys.ended if announce and state in TERMINAL_STATES else ""]  # ARGV[3]: the state
        if state in TERMINAL_STATES:
            values["finished_at"] = now
            if announce:
                values["settled"] = 1
        for name, value in values.items():
            argv += [name, value]
        return int(self._set_state(keys=[keys.req], args=argv)) == 1

    def announce_end(self, request_id: str, state: RequestState) -> None:
        """Mark the ended request settled and wake its waiters (after set_state(..., announce=False))."""
        keys = Keys(request_id)
        pipe = self.r.pipeline(transaction=False)
        pipe.hset(keys.req, "settled", 1)
        pipe.publish(keys.ended, state.value)
        pipe.execute()

    def end_signal(self, request_id: str) -> EndSignal:
        """Subscribe to the request's end; set_state publishes it with the terminal state."""
        return EndSignal(self.r, Keys(request_id).ended)

    def is_cancelled(self, request_id: str) -> bool:
        return bool(self.r.exists(Keys(request_id).cancel))

    def request_cancel(self, request_id: str) -> None:
        self.r.set(Keys(request_id).cancel, "1")

    def cancel_unstarted(self, request_id: str, retention: int = RETENTION_SECONDS) -> bool:
        """End the request CANCELLED now if nothing works on it yet (_CANCEL_UNSTARTED); True if so."""
        keys = Keys(request_id)
        argv: list[Any] = [time.time(), "cancelled by request", EndReason.CANCELLED.value]
        ended = int(self._cancel_unstarted(keys=[keys.req, keys.plan_lease, keys.dispatched, keys.ended, keys.cancel],
                                                 args=argv))  # fmt: skip
        if ended:
            self.set_retention(request_id, retention, 0)
        return bool(ended)

    def name_owner(self, request_id: str, role: str, worker: str, incarnation: str = "") -> None:
        """Record which worker plans ("planner") or finalizes ("finalizer") a request, and under
        which run of it: if its node falls silent or restarts, the janitor publishes that step again."""
        self.r.hset(Keys(request_id).req, mapping={role: worker or "?", f"{role}_incarnation": incarnation})

    def is_planned(self, request_id: str) -> bool:
        return bool(self.r.hget(Keys(request_id).req, "planned") == "1")

    def queued_messages(self, queue: str, limit: int = 10_000) -> list[str]:
        """The raw messages waiting in a broker queue (a kombu Redis list), newest first."""
        return list(self.r.lrange(queue, 0, limit - 1))

    def log_event(self, request_id: str, event: str, **detail: Any) -> None:
        """Append to the request's event log (`dms-submit logs`); the oldest entries fall off."""
        key = Keys(request_id).events
        pipe = self.r.pipeline(transaction=False)
        shown_detail = {k: _shown_value(k, v) for k, v in detail.items()}
        pipe.rpush(key, json.dumps({"at": time.time(), "event": event, **shown_detail}, sort_keys=True))
        pipe.ltrim(key, -EVENTS_CAP, -1)
        pipe.execute()

    def events(self, request_id: str) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self.r.lrange(Keys(request_id).events, 0, -1)]

    def list_requests(
        self, limit: int = 100, since: float | None = None, states: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        """Newest first, at most `limit` of them; `since`: only requests created at or after
        this Unix time; `states`: only requests in one of these states. The filter applies
        before the limit (`list --state FAILED --limit 3` is the 3 newest FAILED ones), so
        the index is read in pages until `limit` rows matched or it is exhausted."""
        low = "-inf" if since is None else since
        wanted = {s.upper() for s in states}
        page = limit if not wanted else max(limit, 500)
        rows: list[dict[str, Any]] = []
        start = 0
        while len(rows) < limit:
            ids = self.r.zrevrangebyscore(REQUESTS_INDEX, "+inf", low, start=start, num=page)
            pipe = self.r.pipeline(transaction=False)
            for request_id in ids:
                pipe.hgetall(Keys(request_id).req)
            gone = []
            for request_id, raw in zip(ids, pipe.execute() if ids else [], strict=True):
                if not raw:
                    gone.append(request_id)
                    continue
                row = {"request_id": request_id, **_decode_request(raw)}
                if not wanted or row.get("state") in wanted:
                    rows.append(row)
            if gone:  # expired: keep the index honest (and the next page where it was)
                self.r.zrem(REQUESTS_INDEX, *gone)
            if len(ids) < page:
                break
            start += len(ids) - len(gone)
        return rows[:limit]

    def errors(self, request_id: str, limit: int = ERRORS_CAP) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self.r.lrange(Keys(request_id).errors, 0, limit - 1)]

    def add_error(self, request_id: str, relpath: str, message: str, errno: int | None = None) -> None:
        keys = Keys(request_id)
        pipe = self.r.pipeline()
        pipe.lpush(keys.errors, _error_entry(relpath, message, errno))
        pipe.ltrim(keys.errors, 0, ERRORS_CAP - 1)
        pipe.execute()

    # -- the plan ------------------------------------------------------------------
    def write_dirs(self, request_id: str, shard: int, dirs: Sequence[DirRecord]) -> None:
        self.r.set(Keys(request_id).dirs(shard), pack_rows([d.to_wire() for d in dirs]))

    def load_dirs(self, request_id: str, shard: int) -> list[DirRecord]:
        value = self.r.get(Keys(request_id).dirs(shard))
        return [DirRecord.from_wire(row) for row in unpack_rows(value)] if value else []

    def write_links(self, request_id: str, shard: int, links: Sequence[LinkRecord]) -> None:
        self.r.set(Keys(request_id).links(shard), pack_rows([x.to_wire() for x in links]))

    def load_links(self, request_id: str, shard: int) -> list[LinkRecord]:
        value = self.r.get(Keys(request_id).links(shard))
        return [LinkRecord.from_wire(row) for row in unpack_rows(value)] if value else []

    def write_names(self, request_id: str, shard: int, listings: Sequence[tuple[str, Sequence[str]]]) -> None:
        self.r.set(Keys(request_id).names(shard), pack_rows([[d, list(n)] for d, n in listings]))

    def load_names(self, request_id: str, shard: int) -> list[tuple[str, list[str]]]:
        value = self.r.get(Keys(request_id).names(shard))
        return [(str(d), [str(x) for x in n]) for d, n in unpack_rows(value)] if value else []

    def add_dryrun(self, request_id: str, lines: Sequence[str]) -> None:
        """Append report lines of a dry run (kept up to DRYRUN_CAP)."""
        if not lines:
            return
        key = Keys(request_id).dryrun
        pipe = self.r.pipeline(transaction=False)
        pipe.rpush(key, *(printable(line) for line in lines))
        pipe.ltrim(key, 0, DRYRUN_CAP - 1)
        pipe.execute()

    def dryrun(self, request_id: str, limit: int = DRYRUN_CAP) -> list[str]:
        return list(self.r.lrange(Keys(request_id).dryrun, 0, limit - 1))

    def add_count(self, request_id: str, field: str, n: int) -> int:
        """Add `n` to a counter of the request; its new value."""
        return int(self.r.hincrby(Keys(request_id).req, field, n))

    def note_units_written(self, request_id: str, count: int) -> None:
        """Units 0..count-1 exist: transfers may start while the walk goes on. A plain
        HSET (the walk is sequential and deterministic), so a re-run plan sets the same value."""
        self.r.hset(Keys(request_id).req, "tasks_total", count)

    def write_unit(self, request_id: str, index: int, pieces: Sequence[UnitPiece], description: str = "") -> None:
        keys = Keys(request_id)
        pipe = self.r.pipeline(transaction=False)
        pipe.set(keys.unit(index), pack_rows(_unit_rows(pieces)))
        if description:
            pipe.set(keys.unit_description(index), description[:300])
        pipe.execute()

    def unit_description(self, request_id: str, index: int) -> str:
        return str(self.r.get(Keys(request_id).unit_description(index)) or "")

    def load_unit(self, request_id: str, index: int) -> list[UnitPiece]:
        """The pieces of unit `index`; UnitGone once it is recorded (its manifest is dropped
        then: ask unit_done) or if the plan holds no such unit."""
        value = self.r.get(Keys(request_id).unit(index))
        if value is None:
            raise UnitGone(f"request {request_id!r} has no transfer unit {index}")
        return _unit_pieces(unpack_rows(value))

    def mark_planned(self, request_id: str, **totals: int) -> UnitProgress:
        """Publish the plan's totals; the returned progress tells if every unit already finished."""
        keys = Keys(request_id)
        pipe = self.r.pipeline()
        pipe.hset(keys.req, mapping={**totals, "planned": 1, "planned_at": time.time()})
        pipe.hmget(keys.req, "tasks_done", "tasks_total", "finalize_sent")
        _, (done, total, sent) = pipe.execute()
        return UnitProgress(False, int(done or 0), int(total), True, sent == "1")  # "0" after a resume

    # -- transfer bookkeeping -----------------------------------------------------------
    def record_unit(
        self,
        request_id: str,
        index: int | None,
        ok: Iterable[RecordedPiece],
        failed: Iterable[FailedPiece],
        epoch: int | None = None,
        *,
        records: Iterable[FileRecord] = (),
        published_bytes: int = 0,
    ) -> UnitProgress:
        """Record a unit's digests and failures, once; `index=None` records what belongs to
        no unit. `records`: the files of the unit that finalize still has to publish (or clear
        away), kept in their shard's finalize hash beside their digests; `published_bytes`:
        the bytes of the files the unit published itself. The first record of a unit drops its
        manifest. With `epoch`: nothing, if the request is another incarnation now (a resume,
        or a plan started over): its unit numbers and file ids name other work."""
        keys = Keys(request_id)
        unit = "" if index is None else index
        manifest = -1 if index is None else index  # -1: a key never written, never dropped (no unit)
        key_list = [keys.req, keys.units_done, keys.errors, keys.inflight, keys.running,
                    keys.unit(manifest), keys.unit_description(manifest)]  # fmt: skip
        key_index: dict[str, int] = {}

        def slot(key: str) -> int:
            if key not in key_index:
                key_list.append(key)
                key_index[key] = len(key_list)  # Lua is 1-based
            return key_index[key]

        ok_args: list[Any] = []
        n_ok = 0
        for p in ok:
            ok_args += [slot(keys.digests(p.file_id // SHARD)), f"{p.file_id}:{p.offset}", f"{p.length}:{p.digest}"]
            ok_args.append(p.length)
            n_ok += 1
        failed_args: list[Any] = []
        n_failed = 0
        for f in failed:
            failed_args += [
                slot(keys.failed(f.file_id // SHARD)),
                f.file_id,
                _error_entry(f.relpath, f.message, f.errno),
            ]
            n_failed += 1
        record_args: list[Any] = []
        seen: set[int] = set()
        for r in records:
            if r.file_id not in seen:
                seen.add(r.file_id)
                record_args += [slot(keys.digests(r.file_id // SHARD)), r.file_id, json.dumps(r.to_wire())]
        fence = "" if epoch is None else epoch
        result = self._record_unit(
            keys=key_list,
            args=[unit, n_ok, n_failed, ERRORS_CAP, fence, len(seen), published_bytes,
                  *ok_args, *failed_args, *record_args],
        )  # fmt: skip
        first, done, total, planned, sent, failed_new, ended = result
        return UnitProgress(
            bool(first), int(done), int(total), planned == "1", sent == "1", int(failed_new), bool(ended)
        )

    def report_inflight(self, request_id: str, index: int, moved: int, claim: str = "") -> None:
        """Live progress of a running unit; overwritten, never added, so a rerun cannot inflate it.
        With `claim`, also who moves it and when its counter last moved (for stall_timeout)."""
        keys = Keys(request_id)
        if not claim:
            self.r.hset(keys.inflight, index, moved)
            return
        self._report_inflight(keys=[keys.inflight, keys.running], args=[index, moved, claim])

    def claim_unit(self, request_id: str, index: int, claim: str) -> None:
        """A transfer starts unit `index` under `claim` (dms.worker.incarnation); its clock starts now."""
        keys = Keys(request_id)
        self._report_inflight(keys=[keys.inflight, keys.running], args=[index, "", claim])

    def stood_still(self, request_id: str, at_least: float) -> int:
        """Seconds the request's progress (units and bytes done, running units' counters)
        has not moved, if at least `at_least`; else 0. Checked, it counts afresh from now:
        whoever acts on a stand-still acts once per `at_least` (dms.worker.standstill)."""
        keys = Keys(request_id)
        return int(self._stood_still(keys=[keys.req, keys.inflight, keys.running, keys.still], args=[at_least]))

    def running_units(self, request_id: str) -> tuple[dict[int, tuple[str, int]], int]:
        """Each claimed, unrecorded unit -> (claim, Redis time its counter last moved), and
        Redis's time now, in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(Keys(request_id).running)
        pipe.time()
        raw, now = pipe.execute()
        units: dict[int, tuple[str, int]] = {}
        for unit, value in raw.items():
            claim, _, at = str(value).rpartition(" ")
            with contextlib.suppress(ValueError):
                units[int(unit)] = (claim, int(at))
        return units, int(now[0])

    def lane_bits(self, request_id: str, total: int) -> tuple[list[int], list[int]]:
        """Bits units_done[k] and dispatched[k] for every unit, in one round trip."""
        keys = Keys(request_id)
        pipe = self.r.pipeline(transaction=False)
        for k in range(total):
            pipe.getbit(keys.units_done, k)
        for k in range(total):
            pipe.getbit(keys.dispatched, k)
        bits = pipe.execute()
        return bits[:total], bits[total:]

    def units_in_flight(self, request_id: str) -> int:
        """Units published and not recorded yet (queued or running): the bits set in
        `dispatched` or `units_done`, less those in `units_done`, counted by Redis."""
        keys = Keys(request_id)
        either = keys.in_flight_scratch
        pipe = self.r.pipeline(transaction=True)  # MULTI: the scratch key never outlives the count
        pipe.bitop("OR", either, keys.dispatched, keys.units_done)
        pipe.bitcount(either)
        pipe.bitcount(keys.units_done)
        pipe.delete(either)
        _, published, done, _ = pipe.execute()
        return int(published) - int(done)

    def mark_dispatched(self, request_id: str, index: int, epoch: int | None = None) -> bool:
        """Unit `index` was published, by a task of incarnation `epoch` (None: the current
        one); whether it counted (not if the request is gone or another incarnation now)."""
        keys = Keys(request_id)
        return bool(self._mark_sent(keys=[keys.req, keys.dispatched], args=["" if epoch is None else epoch, index]))

    def was_dispatched(self, request_id: str, index: int) -> bool:
        return bool(self.r.getbit(Keys(request_id).dispatched, index))

    def unit_done(self, request_id: str, index: int) -> bool:
        return bool(self.r.getbit(Keys(request_id).units_done, index))

    def mark_finalize_sent(self, request_id: str, epoch: int | None = None) -> bool:
        """The finalize message was published, fenced by `epoch` as mark_dispatched is."""
        keys = Keys(request_id)
        return bool(self._mark_sent(keys=[keys.req, keys.dispatched], args=["" if epoch is None else epoch, ""]))

    # -- finalize ----------------------------------------------------------------------
    def rules(self, params: SyncParams) -> RuleSet:
        """The request's filter rules: its --include/--exclude, and its --files-from list if any
        (the walk, the fanned-out walks and the delete pass judge entries by these)."""
        return RuleSet(params.filters, self.listed_paths(params.request_id) if params.files_listed else ())

    def listed_paths(self, request_id: str) -> tuple[str, ...]:
        """The request's --files-from list (empty if it has none)."""
        packed = self.r.get(Keys(request_id).files_from)
        return tuple(os.fsdecode(p) for p in unpack_names(packed) if p) if packed else ()

    def note_strays(self, request_id: str, blob: str) -> int:
        """Keep what a losing copy of a unit wrote (a dms.finalize.strays blob) for finalize:
        1 if kept, 0 if the request ended SUCCEEDED or CANCELLED (remove them now: dms.tidy),
        -1 if the request is gone."""
        keys = Keys(request_id)
        return int(self._note_strays(keys=[keys.req, keys.strays], args=[blob]))

    def take_strays(self, request_id: str) -> list[str]:
        """The descriptions note_strays kept, removed from Redis (finalize, once ended)."""
        keys = Keys(request_id)
        pipe = self.r.pipeline()
        pipe.lrange(keys.strays, 0, -1)
        pipe.delete(keys.strays)
        blobs, _ = pipe.execute()
        return list(blobs)

    def finalize_work(self, request_id: str, shard: int) -> tuple[list[FileRecord], dict[str, str]]:
        """What finalize has to do in one shard: the records of its files that no transfer
        published (in file id order), and their chunks' digests ("file_id:offset" ->
        "length:digest"), from one hash."""
        records: list[FileRecord] = []
        digests: dict[str, str] = {}
        for field, value in self.r.hgetall(Keys(request_id).digests(shard)).items():
            if ":" in field:
                digests[field] = value
            else:
                records.append(FileRecord.from_wire(json.loads(value)))
        records.sort(key=lambda f: f.file_id)
        return records, digests

    def shards_with_work(self, request_id: str, file_shards: int) -> list[int]:
        """The shards, of `file_shards`, that hold anything for finalize (a file no transfer
        published): one EXISTS each, pipelined. A tree whose files were all published by
        their transfers has none, so finalize decodes nothing of it."""
        keys = Keys(request_id)
        found: list[int] = []
        for start in range(0, file_shards, 1000):
            pipe = self.r.pipeline(transaction=False)
            shards = range(start, min(file_shards, start + 1000))
            for shard in shards:
                pipe.exists(keys.digests(shard))
            found += [shard for shard, there in zip(shards, pipe.execute(), strict=True) if int(there)]
        return found

    def load_failed(self, request_id: str, shard: int) -> dict[int, dict[str, Any]]:
        return {int(k): json.loads(v) for k, v in self.r.hgetall(Keys(request_id).failed(shard)).items()}

    def fail_files(self, request_id: str, failed: Iterable[FailedPiece]) -> int:
        """Mark files failed (first reason wins, counted once); returns how many were new."""
        return self.record_unit(request_id, None, [], failed).failed_new

    def mark_published(self, request_id: str, file_ids: Sequence[int], epoch: int | None = None) -> int:
        """Count published files once each, in one round trip; returns how many were new.
        With `epoch`: nothing, if the request is another incarnation now (its file ids
        number other files)."""
        if not file_ids:
            return 0
        keys = Keys(request_id)
        args = ["" if epoch is None else epoch, *file_ids]
        return int(self._mark_published(keys=[keys.req, keys.published], args=args))

    def published_ids(self, request_id: str, shard: int) -> set[int]:
        """File ids of one shard whose published bit is set, in one small script call (a
        shard of small files published by their transfers has all SHARD bits set; SHARD is
        a multiple of 8, so a shard is whole bytes of the bitmap)."""
        first = shard * SHARD
        offsets = self._set_bits(keys=[Keys(request_id).published], args=[first // 8, (first + SHARD) // 8 - 1])
        return {first + int(o) for o in offsets}

    def acquire_finalize_lock(self, request_id: str, owner: str, ttl: int) -> bool:
        """Take the finalize lock for `owner` (the finalize task's id), or take it again for the
        same id: a finalize message comes back with its id only when the run that took the lock
        is gone (Celery cancels the tasks running at a broker connection loss; a worker's
        previous run, or a Redis restart, leaves messages only dead runs had). Without that, a
        finalize cancelled by a Redis restart held the lock for its TTL (an hour), and its
        own message, back at once, ran as "another finalize is running": the request stayed
        FINALIZING (seen in the chaos schedule)."""
        return int(self._take_lock(keys=[Keys(request_id).finalize_lock], args=[owner, ttl])) == 1

    def release_finalize_lock(self, request_id: str) -> None:
        self.r.delete(Keys(request_id).finalize_lock)

    def save_chain(self, request_id: str, chain: list[dict[str, Any]]) -> None:
        self.r.set(Keys(request_id).chain, json.dumps(chain))

    def pop_chain(self, request_id: str) -> list[dict[str, Any]] | None:
        text = self.r.getdel(Keys(request_id).chain)
        return json.loads(text) if text else None

    def forget_digests(self, request_id: str, shard: int, fields: Sequence[str]) -> None:
        for start in range(0, len(fields), 1000):
            self.r.hdel(Keys(request_id).digests(shard), *fields[start : start + 1000])

    def save_carry(self, request_id: str, file_shards: int) -> int:
        """Remember, by path, the chunks already staged of every file not yet published,
        so `resume` moves only the missing chunks. Returns how many files it saved."""
        keys = Keys(request_id)
        saved = 0
        for shard in self.shards_with_work(request_id, file_shards):
            files, digests = self.finalize_work(request_id, shard)
            if not digests:
                continue
            published = self.published_ids(request_id, shard)
            chunks: dict[int, dict[str, str]] = {}
            for key, value in digests.items():
                fid, _, offset = key.partition(":")
                chunks.setdefault(int(fid), {})[offset] = value
            mapping = {
                f.relpath: json.dumps([f.size, f.mtime_ns, chunks[f.file_id]])
                for f in files
                if f.file_id in chunks and f.file_id not in published
            }
            if mapping:
                self.r.hset(keys.carry, mapping=mapping)
                saved += len(mapping)
        return saved

    def load_carry(self, request_id: str) -> dict[str, tuple[int, int, dict[int, tuple[int, str]]]]:
        """relpath -> (size, mtime_ns, {offset: (length, digest)}) saved by save_carry()."""
        out = {}
        for relpath, text in self.r.hgetall(Keys(request_id).carry).items():
            size, mtime_ns, chunks = json.loads(text)
            parsed = {int(o): (int(v.split(":")[0]), v.split(":")[1]) for o, v in chunks.items()}
            out[relpath] = (int(size), int(mtime_ns), parsed)
        return out

    def reset_for_resume(
        self, request_id: str, params: SyncParams, shards: dict[str, int] | None = None, *, started_over: bool = False
    ) -> None:
        """Start a new incarnation of an ended or abandoned request: drop its plan (the
        carry-over stays), zero its counters, store `params` (a higher epoch), PENDING.
        `shards`: how many shards of each kind to drop, for a plan that never recorded them.
        `started_over`: the plan itself starts over (restart_plan): the messages of its plan
        keep their epoch (plan_epochs), a cancel stays, and so does the lost-walk count."""
        keys = Keys(request_id)
        info = self.get(request_id) or {}
        counts = shards or {
            kind: int(info.get(f"{kind[:-1]}_shards", 0)) for kind in ("files", "dirs", "links", "names")
        }
        self.drop_plan(request_id, int(info.get("tasks_total", 0)), counts["files"], counts["dirs"],
                       counts["links"], counts["names"], keep_cancel=started_over)  # fmt: skip
        names = [keys.finalize_lock, keys.errors, keys.dryrun]
        # routes carry NIC load: a resume drops them (nothing runs); a plan starting over gave
        # their load back already, and keeps what a late task of the old epoch routed since,
        # for the new unit of that index to replace or finalize to give back
        names += [] if started_over else [keys.routes]
        names += [keys.failed(s) for s in range(counts["files"])]
        self.r.delete(*names)
        if params.files_from:  # a resubmission with its own list (sync --id ID)
            self.r.set(keys.files_from, pack_names(map(os.fsencode, params.files_from)))
        now = time.time()
        fields: dict[str, Any] = {name: 0 for name in _INT_FIELDS}
        fields.update({"params": params.to_json(), "state": RequestState.PENDING.value, "updated_at": now,
                       "planned": 0, "finalize_sent": 0, "epoch": params.epoch})  # fmt: skip
        if not started_over:
            fields.update(base_epoch=params.epoch, walks_lost=0)
        pipe = self.r.pipeline()
        pipe.hdel(keys.req, "finished_at", "planned_at", "error", "end_reason", "settled")
        pipe.hset(keys.req, mapping=fields)
        pipe.persist(keys.req)
        pipe.persist(keys.events)
        pipe.persist(keys.strays)
        pipe.persist(keys.files_from)
        pipe.execute()

    def restart_plan(self, request_id: str, params: SyncParams) -> int:
        """A plan that was interrupted after it wrote units starts over as a new incarnation
        (`params`, a higher epoch), as `resume` does: the transfers that ran meanwhile changed
        the destination, so the new walk's quick check numbers files and cuts units
        differently, and no unit, digest or publish mark of the old numbering may count.
        Chunks already staged are carried over by path. A cancel asked for stays. Returns
        how many files were carried."""
        written = self._shards_written(Keys(request_id), ("dirs", "links", "names", "digests", "failed"))
        shards = {kind: written[kind] for kind in ("dirs", "links", "names")}
        shards["files"] = max(written["digests"], written["failed"])  # file shards: their finalize hashes
        carried = self.save_carry(request_id, shards["files"])
        self.reset_for_resume(request_id, params, shards, started_over=True)
        return carried

    def begin_epoch(self, request_id: str, params: SyncParams) -> None:
        """Make `params` (a higher epoch) the request's incarnation at once: every task of the
        old one is stale from here on (live_params, and the epoch fence of record_unit and
        mark_published), before restart_plan drops what the old one wrote."""
        self.r.hset(Keys(request_id).req, mapping={"params": params.to_json(), "epoch": params.epoch})

    def plan_epochs(self, request_id: str) -> tuple[int, int]:
        """(base, current): a plan message of any epoch in between belongs to this incarnation
        (the plan started over since it was published), one older is of an earlier resume."""
        current = self.params(request_id).epoch
        base = self.r.hget(Keys(request_id).req, "base_epoch")
        return (int(base) if base is not None else current), current

    def _shards_written(self, keys: Keys, kinds: Sequence[str]) -> dict[str, int]:
        """Per kind, 1 + the highest shard number stored (an unfinished plan recorded no
        count): one SCAN over the request's keys for all of them."""
        counts = dict.fromkeys(kinds, 0)
        for key in self.r.scan_iter(match=keys.pattern("*"), count=1000):
            kind, _, shard = str(key)[len(keys.base) + 1 :].partition(":")
            if kind in counts and shard.isdigit():
                counts[kind] = max(counts[kind], int(shard) + 1)
        return counts

    def drop_plan(
        self,
        request_id: str,
        units: int,
        file_shards: int,
        dir_shards: int,
        link_shards: int = 0,
        name_shards: int = 0,
        *,
        keep_cancel: bool = False,
    ) -> None:
        """Delete what only the transfer needed; keep the request hash, errors and failures
        (and the cancel mark, with `keep_cancel`)."""
        keys = Keys(request_id)
        names = [keys.unit(k) for k in range(units)] + [keys.unit_description(k) for k in range(units)]
        names += [keys.dirs(s) for s in range(dir_shards)]
        names += [keys.links(s) for s in range(link_shards)] + [keys.names(s) for s in range(name_shards)]
        names += [keys.digests(s) for s in range(file_shards)]
        names += [keys.units_done, keys.dispatched, keys.published, keys.inflight, keys.running, keys.still]
        names += [] if keep_cancel else [keys.cancel]
        self.delete_keys(names)

    def delete_keys(self, names: Sequence[str]) -> None:
        """DEL `names`, 500 per command: one DEL of millions of keys would block Redis."""
        for start in range(0, len(names), 500):
            self.r.delete(*names[start : start + 500])

    def set_retention(self, request_id: str, seconds: int, file_shards: int) -> None:
        """Start the retention clock of an ended request (docs/operations.md, "Retention")."""
        keys = Keys(request_id)
        pipe = self.r.pipeline(transaction=False)
        for name in [keys.req, keys.errors, keys.events, keys.chain, keys.dryrun, keys.strays, keys.files_from,
                     *(keys.failed(s) for s in range(file_shards))]:  # fmt: skip
            pipe.expire(name, seconds)
        pipe.execute()


def _unit_rows(pieces: Sequence[UnitPiece]) -> list[Any]:
    """A unit's manifest rows (UnitPiece.to_row): each file id as the step from the one before."""
    rows, previous = [], 0
    for p in pieces:
        rows.append(p.to_row(previous))
        previous = p.file.file_id
    return rows


def _unit_pieces(rows: list[Any]) -> list[UnitPiece]:
    pieces, previous = [], 0
    for row in rows:
        piece = UnitPiece.from_row(row, previous)
        pieces.append(piece)
        previous = piece.file.file_id
    return pieces


def _error_entry(relpath: str, message: str, errno: int | None) -> str:
    """One entry of `dms:req:R:errors` (and of a failure shard): what `status --files` shows."""
    entry = {"path": shown(relpath), "error": printable(message), "errno": errno, "at": time.time()}
    return json.dumps(entry)


#: Event fields that hold a path: shown in dms.fs.names' escaped form (other text: printable()).
_PATH_FIELDS = frozenset({"path", "first", "source", "destination"})


def _shown_value(key: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    return shown(value) if key in _PATH_FIELDS else printable(value)


def _decode_request(raw: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(raw)
    for name in _INT_FIELDS:
        out[name] = int(raw.get(name) or 0)
    for name in ("created_at", "updated_at", "planned_at", "finished_at"):
        if name in raw:
            out[name] = float(raw[name])
    out["planned"] = raw.get("planned") == "1"
    out["finalize_sent"] = raw.get("finalize_sent") == "1"
    out["settled"] = raw.get("settled") == "1"
    if "params" in raw:
        out["params"] = json.loads(raw["params"])
    return out
