"""What DMS reads and writes in the broker's own Redis keys: kombu's unacked messages, the
once-per-Redis-process marker of a restart, the queues of a private (embedded) server.

Why here and not beside the worker step that uses it: every Redis key and call DMS makes
lives in the state package, so a reader finds the whole of what DMS keeps in Redis in
one place, and a change of the broker's layout (a kombu upgrade) touches one module.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Any

from dms.state.requests import RequestStore

__all__ = [
    "SLACK_SECONDS",
    "answers_on_socket",
    "compact_append_only",
    "drop_broker_keys",
    "first_to_see_restart",
    "restore_orphaned",
    "restore_reserved_before",
    "server_info",
    "tolerate_restore_on_a_dead_connection",
]

log = logging.getLogger(__name__)

#: Messages fetched up to this long after Redis started are treated as orphans too:
#: uptime has a resolution of one second, and restoring twice is harmless; stranding is not.
SLACK_SECONDS = 1.0


def restore_orphaned(channel: Any, server: dict[str, Any]) -> int:
    """Restore the unacked messages fetched before the Redis server (`server`: its INFO
    server section) started; how many. kombu's own WATCH transaction (`restore_by_tag`)
    does it, so two workers doing it at once restore each message once."""
    client = channel.client
    started = time.time() - float(server["uptime_in_seconds"]) + SLACK_SECONDS
    tags = client.zrange(channel.unacked_index_key, 0, started, byscore=True)
    for tag in tags:
        channel.qos.restore_by_tag(tag, client, leftmost=True)  # first in line: it was already due
    return len(tags)


def restore_reserved_before(channel: Any, queues: set[str], before: float) -> int:
    """Restore the unacked messages of `queues` fetched before `before` (wall clock); how many.

    For a worker that is the only consumer of `queues` (a node's own queues), starting at
    `before`: whatever those queues' messages were fetched earlier was fetched by its
    previous run, which is gone (killed, restarted), and would otherwise wait for the
    visibility timeout. The fetch time is kombu's score in the unacked index, written by
    the same host's clock as `before`."""
    client = channel.client
    tags = [t for t in client.zrange(channel.unacked_index_key, 0, before, byscore=True)]
    if not tags:
        return 0
    restored = 0
    for tag, raw in zip(tags, client.hmget(channel.unacked_key, tags), strict=True):
        if raw is None:
            continue
        try:
            routing_key = json.loads(raw)[2]
        except (ValueError, IndexError, TypeError):
            continue
        if routing_key in queues:
            channel.qos.restore_by_tag(tag, client, leftmost=True)  # first in line: it was already due
            restored += 1
    return restored


def server_info(channel: Any) -> dict[str, Any]:
    """The INFO server section (uptime, run id) of the Redis process a kombu channel reaches."""
    return dict(channel.client.info("server"))


def first_to_see_restart(channel: Any, server: dict[str, Any], remember_seconds: float) -> bool:
    """Whether this caller is the first to act on the Redis process `server` (its INFO
    server section) having started: SET NX on its run id, over the channel's connection."""
    marker = f"dms:restarted:{server['run_id']}"
    return bool(channel.client.set(marker, "1", nx=True, ex=int(remember_seconds)))


def answers_on_socket(socket_path: str) -> bool:
    """Whether a redis-server answers PING on this Unix socket now."""
    import redis

    with contextlib.suppress(redis.RedisError):
        client = redis.Redis(unix_socket_path=socket_path, socket_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    return False


def compact_append_only(socket_path: str, grown: int = 256 << 10, timeout: float = 10.0) -> bool:
    """Rewrite a private server's append-only file to what its data set holds now, when it
    has grown by more than `grown` bytes since the last rewrite (BGREWRITEAOF, waited for up
    to `timeout`). Why: every write of a finished request's plan (shards, units, digests) is
    in the file until a rewrite, and the next start would replay them all; what is left
    after a request ends is its record. Whether it did."""
    import redis

    client = redis.Redis(unix_socket_path=socket_path, socket_timeout=5, decode_responses=True)
    try:
        info = client.info("persistence")
        if int(info.get("aof_current_size", 0)) - int(info.get("aof_base_size", 0)) <= grown:
            return False
        client.bgrewriteaof()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = client.info("persistence")
            if not info.get("aof_rewrite_in_progress") and not info.get("aof_rewrite_scheduled"):
                return True
            time.sleep(0.02)
        return False
    except redis.RedisError:
        return False
    finally:
        client.close()


def store_on_socket(socket_path: str) -> RequestStore:
    """The request store of a private redis-server reached on its Unix socket."""
    import redis

    return RequestStore(redis.Redis(unix_socket_path=socket_path, decode_responses=True, socket_timeout=30))


def drop_broker_keys(store: RequestStore) -> int:
    """Delete every key outside dms:* (Celery's queues, results, unacked sets) of a private
    server nobody else uses; how many."""
    stale = [key for key in store.r.scan_iter(count=1000) if not key.startswith("dms:")]
    store.delete_keys(stale)
    return len(stale)


def tolerate_restore_on_a_dead_connection() -> None:
    """Keep a worker alive through a kombu race when Redis goes away (kombu 5.7.0).

    After a connection error, Celery closes the connection and kombu's Redis QoS tries to
    restore the channel's unacked messages. When the transport's connection is already torn
    down, building a client for that raises AttributeError ("'NoneType' object has no
    attribute 'hostname'", kombu `_connparams`), which Celery treats as unrecoverable: the
    worker exits (the same family as kombu#659). Nothing is lost by not restoring there: the
    messages stay in Redis's unacked set, and the worker puts them back when its consumer
    reconnects (or the visibility timeout does, if Redis itself did not restart). So log,
    and carry on.
    """
    from kombu.transport import redis as kombu_redis

    original = kombu_redis.QoS.restore_unacked
    if getattr(original, "_dms_tolerant", False):
        return

    def restore_unacked(self: Any, client: Any = None) -> Any:
        try:
            return original(self, client)  # type: ignore[no-untyped-call]
        except AttributeError as exc:
            log.warning("could not put back %d unacknowledged message(s) while the broker connection closed "
                        "(%s); they are put back when the worker reconnects", len(self._delivered), exc)  # fmt: skip
            self._delivered.clear()  # as a successful restore does: they live on in Redis's unacked set
            return None

    restore_unacked._dms_tolerant = True  # type: ignore[attr-defined]
    kombu_redis.QoS.restore_unacked = restore_unacked  # type: ignore[method-assign]
