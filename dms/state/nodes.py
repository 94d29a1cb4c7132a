"""Which nodes are alive, what their NICs carry, and where each unit was routed (all in Redis).

    dms:nodes                 set of node names that ever sent a heartbeat
    dms:node:<node>           JSON status, SET with a TTL of heartbeat_ttl: a node whose
                              heartbeat lapsed simply has no key, and is not scheduled
    dms:nicload               hash "<node>/<iface>" -> bytes routed there and not yet done
    dms:pathsdown             zset "<source key>|<destination key>" -> until when (Unix time) the
                              path is avoided: a transfer's connection over it just failed
    dms:req:<id>:routes       hash unit -> [source key, destination key, bytes]
    dms:janitor:lock          one sweep at a time across the deployment (SET NX PX)
    dms:janitor:dead_since:<node>  when the janitor first found the node silent
    dms:janitor:turn:<what>   a sweep's periodic extra (the claims of running units) is due
                              when this key has lapsed

Load accounting is idempotent per unit: routing a unit again first takes back
what its previous route added, and releasing a unit that is not routed is a
no-op, so duplicate deliveries and retries never inflate a NIC's load.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from dms.state.requests import Keys, RequestStore

__all__ = ["NicEndpoint", "NodeStatus", "Registry", "endpoints_of"]

NODES = "dms:nodes"
NIC_LOAD = "dms:nicload"
PATHS_DOWN = "dms:pathsdown"
SWEEP_LOCK = "dms:janitor:lock"
DEAD_SINCE = "dms:janitor:dead_since:"


def _node_key(node: str) -> str:
    return f"dms:node:{node}"


# Routes unit ARGV[1] and adds its bytes to its NICs' load, unless the unit is done already
# (KEYS[4], its request's units_done bitmap) or its request ended (KEYS[3]): a late duplicate
# or a retry racing the unit's record would otherwise add load that nothing takes back (the
# record released it before, and finalize's release_all may have run). Atomic, so the race
# has no window.
_ASSIGN = """
if redis.call('GETBIT', KEYS[4], ARGV[1]) == 1 then return 0 end
local state = redis.call('HGET', KEYS[3], 'state')
if state == 'SUCCEEDED' or state == 'FAILED' or state == 'CANCELLED' then return 0 end
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local o = cjson.decode(old)
  redis.call('HINCRBY', KEYS[2], o[1], 0 - o[3])
  if o[2] ~= '' then redis.call('HINCRBY', KEYS[2], o[2], 0 - o[3]) end
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({ARGV[2], ARGV[3], tonumber(ARGV[4])}))
redis.call('HINCRBY', KEYS[2], ARGV[2], ARGV[4])
if ARGV[3] ~= '' then redis.call('HINCRBY', KEYS[2], ARGV[3], ARGV[4]) end
return 1
"""

_RELEASE = """
local n = 0
for i = 1, #ARGV do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  if old then
    local o = cjson.decode(old)
    redis.call('HINCRBY', KEYS[2], o[1], 0 - o[3])
    if o[2] ~= '' then redis.call('HINCRBY', KEYS[2], o[2], 0 - o[3]) end
    redis.call('HDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
"""


@dataclass(frozen=True)
class NicEndpoint:
    """One data-plane NIC of one live node, as its heartbeat announced it."""

    node: str
    cluster: str
    interface: str
    address: str
    port: int
    network: str = ""

    @property
    def key(self) -> str:
        return f"{self.node}/{self.interface}"


@dataclass(frozen=True)
class NodeStatus:
    node: str
    cluster: str
    hostname: str
    pid: int
    nics: tuple[NicEndpoint, ...]
    receiver: bool
    free_bytes: dict[str, int] = field(default_factory=dict)
    load: tuple[float, ...] = ()
    concurrency: int = 1
    time: float = 0.0
    #: which run of the worker beats (dms.worker.incarnation) and the pids of its pool
    incarnation: str = ""
    pool: tuple[int, ...] = ()

    def to_json(self) -> str:
        d = asdict(self)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> NodeStatus:
        d = json.loads(text)
        d["nics"] = tuple(NicEndpoint(**n) for n in d["nics"])
        d["load"] = tuple(d.get("load", ()))
        d["pool"] = tuple(d.get("pool", ()))
        return cls(**d)


class Registry:
    def __init__(self, client: redis.Redis, cache_seconds: float = 1.0) -> None:
        # Any, as in RequestStore: this client always decodes (decode_responses=True).
        self.r: Any = client
        self._assign = client.register_script(_ASSIGN)
        self._release = client.register_script(_RELEASE)
        self._cache_seconds = cache_seconds
        self._cache: tuple[float, list[NodeStatus]] | None = None

    @classmethod
    def sharing(cls, store: RequestStore) -> Registry:
        """A registry on the request store's connection (one connection per process)."""
        return cls(store.r)

    # -- heartbeats ----------------------------------------------------------------
    def heartbeat(self, status: NodeStatus, ttl: float) -> None:
        pipe = self.r.pipeline(transaction=False)
        pipe.sadd(NODES, status.node)
        pipe.set(_node_key(status.node), status.to_json(), px=int(ttl * 1000))
        pipe.execute()

    def withdraw(self, node: str) -> None:
        """A worker that stops cleanly leaves the schedule at once instead of after its TTL."""
        self.r.delete(_node_key(node))

    def ping_seconds(self) -> float:
        """How long one PING of the DMS Redis takes now (a node's metrics report it)."""
        start = time.perf_counter()
        self.r.ping()
        return time.perf_counter() - start

    def live_nodes(self, fresh: bool = False) -> list[NodeStatus]:
        now = time.monotonic()
        if not fresh and self._cache and now - self._cache[0] < self._cache_seconds:
            return self._cache[1]
        names = sorted(self.r.smembers(NODES))
        nodes: list[NodeStatus] = []
        if names:
            for text in self.r.mget([_node_key(n) for n in names]):
                if text:
                    nodes.append(NodeStatus.from_json(text))
        self._cache = (now, nodes)
        return nodes

    def node(self, name: str) -> NodeStatus | None:
        text = self.r.get(_node_key(name))
        return NodeStatus.from_json(text) if text else None

    # -- load accounting -------------------------------------------------------------
    def nic_load(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.r.hgetall(NIC_LOAD).items()}

    def assign(self, request_id: str, index: int, source_key: str, destination_key: str, nbytes: int) -> bool:
        """Record unit `index`'s route and load; False (nothing recorded) if it is done or its
        request ended."""
        keys = Keys(request_id)
        return bool(self._assign(keys=[keys.routes, NIC_LOAD, keys.req, keys.units_done],
                                 args=[index, source_key, destination_key, nbytes]))  # fmt: skip

    def route_of(self, request_id: str, index: int) -> tuple[str, str, int] | None:
        text = self.r.hget(Keys(request_id).routes, index)
        if not text:
            return None
        src, dst, nbytes = json.loads(text)
        return str(src), str(dst), int(nbytes)

    def release(self, request_id: str, indices: Sequence[int]) -> int:
        if not indices:
            return 0
        return int(self._release(keys=[Keys(request_id).routes, NIC_LOAD], args=list(indices)))

    def routed_units(self, request_id: str) -> list[int]:
        return [int(k) for k in self.r.hkeys(Keys(request_id).routes)]

    def release_all(self, request_id: str) -> int:
        """Take back the load of every unit still routed (finalize of an ended request)."""
        n = self.release(request_id, self.routed_units(request_id))
        self.r.delete(Keys(request_id).routes)
        return n

    # -- paths that just failed -----------------------------------------------------------
    def mark_path_down(self, source_key: str, destination_key: str, seconds: float) -> None:
        """A connection from `source_key` to `destination_key` failed: the scheduler avoids the
        pair for `seconds` (at once, not at the next heartbeat, which may never see it: the
        fault can be anywhere between the two NICs)."""
        self.r.zadd(PATHS_DOWN, {f"{source_key}|{destination_key}": time.time() + seconds})

    def paths_down(self) -> set[tuple[str, str]]:
        """The (source key, destination key) pairs to avoid now."""
        pipe = self.r.pipeline(transaction=False)
        pipe.zremrangebyscore(PATHS_DOWN, "-inf", time.time())
        pipe.zrange(PATHS_DOWN, 0, -1)
        _, members = pipe.execute()
        return {tuple(m.split("|", 1)) for m in members if "|" in m}

    # -- the janitor's bookkeeping -----------------------------------------------------
    def take_sweep_lock(self) -> bool:
        """One sweep at a time across the deployment; the lock lapses by itself (5 s)."""
        return bool(self.r.set(SWEEP_LOCK, "1", nx=True, px=5000))

    def take_turn(self, what: str, every: float) -> bool:
        """True for one caller per `every` seconds across the deployment (SET NX PX)."""
        return bool(self.r.set(f"dms:janitor:turn:{what}", "1", nx=True, px=int(every * 1000)))

    def release_sweep_lock(self) -> None:
        self.r.delete(SWEEP_LOCK)

    def known_nodes(self) -> set[str]:
        """Every node that sent a heartbeat and has not been forgotten, live or not."""
        return set(self.r.smembers(NODES))

    def silent_since(self, node: str) -> float:
        """When the janitor first found `node` silent (0: not yet)."""
        return float(self.r.get(f"{DEAD_SINCE}{node}") or 0)

    def note_silent(self, node: str, since: float) -> None:
        self.r.set(f"{DEAD_SINCE}{node}", since, ex=3600)

    def clear_silence(self, nodes: Sequence[str]) -> None:
        if nodes:
            self.r.delete(*[f"{DEAD_SINCE}{node}" for node in nodes])

    def forget(self, node: str) -> None:
        """Stop sweeping a node until it sends a heartbeat again."""
        self.r.srem(NODES, node)
        self.r.delete(f"{DEAD_SINCE}{node}")


def endpoints_of(nodes: Sequence[NodeStatus], cluster: str, *, receivers_only: bool = False) -> list[NicEndpoint]:
    """Every data NIC of the live nodes of `cluster`, in a stable order."""
    out = [nic for n in nodes if n.cluster == cluster and (n.receiver or not receivers_only) for nic in n.nics]
    return sorted(out, key=lambda e: e.key)
