"""Put back the messages a Redis restart left unacknowledged.

With persistence on (docs/operations.md), Redis comes back with its queues and with
the `unacked` hash of every message a worker had fetched but not acknowledged. kombu
restores a channel's unacked messages when the channel closes, but when Redis itself
went away that restore cannot reach it, so the messages wait for the visibility
timeout (2 h) and their lanes stall (CELERY-NOTES 4.2, 4.3).

Every connection to the previous Redis process is gone, so a message fetched before
the running Redis process started can never be acknowledged: this step, which runs
each time a worker's consumer (re)connects, restores exactly those, at once, into the
queue they came from. Restoring is kombu's own WATCH transaction (`restore_by_tag`),
so two workers doing it at once restore each message once. A task that was still
running when Redis went away may run a second time; every DMS task is idempotent.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import bootsteps

__all__ = ["RestoreAfterBrokerRestart", "restore_orphaned", "tolerate_restore_on_a_dead_connection"]

log = logging.getLogger(__name__)

#: Messages fetched up to this long after Redis started are treated as orphans too:
#: uptime has a resolution of one second, and restoring twice is harmless; stranding is not.
SLACK_SECONDS = 1.0


def restore_orphaned(channel: Any, server: dict[str, Any]) -> int:
    """Restore the unacked messages fetched before the Redis server (`server`: its INFO
    server section) started; how many."""
    client = channel.client
    started = time.time() - float(server["uptime_in_seconds"]) + SLACK_SECONDS
    tags = client.zrange(channel.unacked_index_key, 0, started, byscore=True)
    for tag in tags:
        channel.qos.restore_by_tag(tag, client, leftmost=True)  # first in line: it was already due
    return len(tags)


#: A Redis process younger than this counts as "just restarted" when a worker reconnects.
RECENT_RESTART_SECONDS = 600.0


def restart_lanes_once(client: Any, app: Any, server: dict[str, Any]) -> int:
    """After a Redis restart, once per Redis process (the first worker to reconnect does it):
    restart the lanes of every transferring request (dms.janitor.restart_lane_heads), since
    a message popped but not yet recorded as unacknowledged when Redis died is lost."""
    if float(server["uptime_in_seconds"]) > RECENT_RESTART_SECONDS:
        return 0
    if not client.set(f"dms:restarted:{server['run_id']}", "1", nx=True, ex=int(RECENT_RESTART_SECONDS * 2)):
        return 0  # another worker did it
    from dms.janitor import restart_lane_heads
    from dms.model import RequestState

    task = app.tasks["dms.transfer"]
    store = task.store
    started = 0
    for info in store.list_requests(limit=1000):
        if info["state"] == RequestState.TRANSFERRING.value:
            params = store.params(info["request_id"])
            started += restart_lane_heads(store, task, params, reason="Redis restarted")
    if started:
        log.warning("restarted %d lane(s) of transferring requests after a Redis restart", started)
    return started


class RestoreAfterBrokerRestart(bootsteps.StartStopStep):  # type: ignore[misc]
    """A consumer step: on every (re)connect, restore what a Redis restart orphaned."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, c: Any) -> None:
        channel = getattr(getattr(c, "task_consumer", None), "channel", None)
        if channel is None or not hasattr(channel, "unacked_index_key"):
            return  # not the Redis transport
        try:
            server = channel.client.info("server")  # uptime and run id of the Redis process reached
            n = restore_orphaned(channel, server)
            if n:
                log.warning("restored %d message(s) left unacknowledged by a Redis restart", n)
            restart_lanes_once(channel.client, c.app, server)
        except Exception as exc:  # never stop a worker from consuming
            log.warning("could not recover from a Redis restart: %s", exc)


def tolerate_restore_on_a_dead_connection() -> None:
    """Keep a worker alive through a kombu race when Redis goes away (kombu 5.7.0).

    After a connection error, Celery closes the connection and kombu's Redis QoS tries to
    restore the channel's unacked messages. When the transport's connection is already torn
    down, building a client for that raises AttributeError ("'NoneType' object has no
    attribute 'hostname'", kombu `_connparams`), which Celery treats as unrecoverable: the
    worker exits (seen in CI during the Redis-restart test; the same family as kombu#659).
    Nothing is lost by not restoring there: the messages stay in Redis's unacked set, and
    RestoreAfterBrokerRestart puts them back when the consumer reconnects (or the visibility
    timeout does, if Redis itself did not restart). So log, and carry on.
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
