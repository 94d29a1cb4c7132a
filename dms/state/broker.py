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
from collections.abc import Iterator
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
    "tolerate_a_dead_connection",
]

log = logging.getLogger(__name__)

#: Messages fetched up to this long after Redis started are treated as orphans too:
#: uptime has a resolution of one second, and restoring twice is harmless; stranding is not.
SLACK_SECONDS = 1.0


def restore_orphaned(channel: Any, server: dict[str, Any]) -> int:
    """Restore the unacked messages fetched before the Redis server (`server`: its INFO
    server section) started; how many."""
    started = time.time() - float(server["uptime_in_seconds"]) + SLACK_SECONDS
    return restore_reserved_before(channel, None, started)


def restore_reserved_before(channel: Any, queues: set[str] | None, before: float) -> int:
    """Restore the unacked messages fetched before `before` (wall clock), of `queues` only
    unless None; how many. kombu's own WATCH transaction (`restore_by_tag`) does it, so two
    workers doing it at once restore each message once.

    For a worker that is the only consumer of `queues` (a node's own queues), starting at
    `before`: whatever those queues' messages were fetched earlier was fetched by its
    previous run, which is gone (killed, restarted), and would otherwise wait for the
    visibility timeout. The fetch time is kombu's score in the unacked index, written by
    the same host's clock as `before`."""
    with own_client(channel) as client:
        tags = client.zrange(channel.unacked_index_key, 0, before, byscore=True)
        if tags and queues is not None:
            tags = _of_queues(client, channel, tags, queues)
        for tag in tags:
            channel.qos.restore_by_tag(tag, client, leftmost=True)  # first in line: it was already due
    return len(tags)


def _of_queues(client: Any, channel: Any, tags: list[Any], queues: set[str]) -> list[Any]:
    """The tags whose unacked entry ([message, exchange, routing key]) names one of `queues`."""
    out = []
    for tag, raw in zip(tags, client.hmget(channel.unacked_key, tags), strict=True):
        try:
            if raw is not None and json.loads(raw)[2] in queues:
                out.append(tag)
        except (ValueError, IndexError, TypeError):
            continue
    return out


@contextlib.contextmanager
def own_client(channel: Any) -> Iterator[Any]:
    """A synchronous client of the channel's Redis, closed after use.

    Never `channel.client`: that is the consumer's asynchronous client, whose connection the
    event loop reads BRPOP replies from. A command sent on it from a bootstep reads whatever
    reply comes first: INFO got a BRPOP's (the "could not recover" warning every worker
    logged at start, "'NoneType' object has no attribute 'splitlines'"), and BRPOP later got
    another command's (the worker's exit with "too many values to unpack")."""
    client = channel._create_client()
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close()


def server_info(channel: Any) -> dict[str, Any]:
    """The INFO server section (uptime, run id) of the Redis process a kombu channel reaches."""
    with own_client(channel) as client:
        return dict(client.info("server"))


def first_to_see_restart(channel: Any, server: dict[str, Any], remember_seconds: float) -> bool:
    """Whether this caller is the first to act on the Redis process `server` (its INFO
    server section) having started: SET NX on its run id."""
    marker = f"dms:restarted:{server['run_id']}"
    with own_client(channel) as client:
        return bool(client.set(marker, "1", nx=True, ex=int(remember_seconds)))


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


def compact_append_only(socket_path: str, grown: int = 64 << 10, timeout: float = 10.0) -> bool:
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

    # surrogate escapes: packed plan values are bytes, read back exactly (dms.state.packed)
    client = redis.Redis(unix_socket_path=socket_path, decode_responses=True, socket_timeout=30,
                         encoding_errors="surrogateescape")  # fmt: skip
    return RequestStore(client)


def drop_broker_keys(store: RequestStore) -> int:
    """Delete every key outside dms:* (Celery's queues, results, unacked sets) of a private
    server nobody else uses; how many."""
    stale = [key for key in store.r.scan_iter(count=1000) if not key.startswith("dms:")]
    store.delete_keys(stale)
    return len(stale)


def tolerate_a_dead_connection() -> None:
    """Keep a worker alive through kombu races when Redis goes away (kombu 5.7.0).

    After a connection error, Celery closes the connection. Anything kombu's Redis QoS
    then does on that channel builds a client from the transport's connection, which is
    already torn down: AttributeError ("'NoneType' object has no attribute 'hostname'" in
    `_connparams` when it restores the unacked messages at close; "... attribute 'client'"
    when a task that was running acknowledges its message). Celery treats both as
    unrecoverable and the worker exits (the same family as kombu#659). Nothing is lost by
    not doing them there: the messages stay in Redis's unacked set, and the worker puts
    them back when its consumer reconnects (or the visibility timeout does, if Redis itself
    did not restart); a task that ran to the end then runs again as a duplicate, which every
    DMS task is built to be. So log, forget the delivery locally, and carry on.
    """
    from kombu.transport import redis as kombu_redis
    from kombu.transport import virtual

    qos: Any = kombu_redis.QoS
    base_qos: Any = virtual.QoS
    if getattr(qos.restore_unacked, "_dms_tolerant", False):
        return
    restore_original, ack_original, reject_original = qos.restore_unacked, qos.ack, qos.reject

    def restore_unacked(self: Any, client: Any = None) -> Any:
        try:
            return restore_original(self, client)
        except AttributeError as exc:
            log.warning("could not put back %d unacknowledged message(s) while the broker connection closed "
                        "(%s); they are put back when the worker reconnects", len(self._delivered), exc)  # fmt: skip
            self._delivered.clear()  # as a successful restore does: they live on in Redis's unacked set
            return None

    def ack(self: Any, delivery_tag: Any) -> None:
        try:
            ack_original(self, delivery_tag)
        except AttributeError as exc:
            log.warning("could not acknowledge message %s on a closed broker connection (%s); it is put "
                        "back when the worker reconnects and runs again as a harmless duplicate",
                        delivery_tag, exc)  # fmt: skip
            base_qos.ack(self, delivery_tag)

    def reject(self: Any, delivery_tag: Any, requeue: bool = False) -> None:
        try:
            reject_original(self, delivery_tag, requeue=requeue)
        except AttributeError as exc:
            log.warning("could not reject message %s on a closed broker connection (%s); it is put back when "
                        "the worker reconnects", delivery_tag, exc)  # fmt: skip
            base_qos.ack(self, delivery_tag)

    patches: dict[str, Any] = {"restore_unacked": restore_unacked, "ack": ack, "reject": reject}
    for name, patched in patches.items():
        patched._dms_tolerant = True
        setattr(qos, name, patched)
