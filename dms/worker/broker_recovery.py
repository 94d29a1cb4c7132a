"""Put back the messages a Redis restart left unacknowledged.

With persistence on (docs/operations.md), Redis comes back with its queues and with
the `unacked` hash of every message a worker had fetched but not acknowledged. kombu
restores a channel's unacked messages when the channel closes, but when Redis itself
went away that restore cannot reach it, so the messages wait for the visibility
timeout (2 h) and their lanes stall (decision 0023, F4 and F5).

Every connection to the previous Redis process is gone, so a message fetched before
the running Redis process started can never be acknowledged: this step, which runs
each time a worker's consumer (re)connects, restores exactly those, at once, into the
queue they came from (dms.state.broker.restore_orphaned). A task that was still
running when Redis went away may run a second time; every DMS task is idempotent.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from celery import bootsteps

from dms.route.queues import cluster_queue, node_queues
from dms.settings import current_node
from dms.state.broker import first_to_see_restart, restore_orphaned, restore_reserved_before, server_info
from dms.worker import incarnation

__all__ = ["RestoreAfterBrokerRestart", "reconnect_promptly", "restart_lanes_once"]

log = logging.getLogger(__name__)

#: A Redis process younger than this counts as "just restarted" when a worker reconnects.
RECENT_RESTART_SECONDS = 600.0


def restart_lanes_once(channel: Any, app: Any, server: dict[str, Any]) -> int:
    """After a Redis restart, once per Redis process (the first worker to reconnect does it):
    restart the lanes of every transferring request (dms.route.lanes.restart_lane_heads), since
    a message popped but not yet recorded as unacknowledged when Redis died is lost."""
    if float(server["uptime_in_seconds"]) > RECENT_RESTART_SECONDS:
        return 0
    if not first_to_see_restart(channel, server, RECENT_RESTART_SECONDS * 2):
        return 0  # another worker did it
    from dms.model import RequestState
    from dms.route.lanes import restart_lane_heads

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


#: How a worker's consumer tries to reach a Redis that went away: at once, then every
#: RECONNECT_STEP seconds more, at most RECONNECT_MAX apart. kombu's own (2 s, +2 s, at most
#: 30 s) left a worker 10 s behind a Redis back after a 20-s outage (an acceptance run).
RECONNECT_FIRST, RECONNECT_STEP, RECONNECT_MAX = 0.5, 0.5, 2.0


def reconnect_promptly(consumer: Any) -> None:
    """Make the consumer's reconnect loop try every RECONNECT_MAX seconds at most: Celery
    passes kombu's interval defaults, which no setting changes, so the connection it
    ensures gets these as its own. An attempt is one connect to Redis: cheap, even from
    every worker of a deployment."""
    ensure_connected = consumer.ensure_connected

    def ensure_promptly(conn: Any) -> Any:
        intervals = {"interval_start": RECONNECT_FIRST, "interval_step": RECONNECT_STEP, "interval_max": RECONNECT_MAX}
        conn.ensure_connection = functools.partial(conn.ensure_connection, **intervals)
        return ensure_connected(conn)

    consumer.ensure_connected = ensure_promptly


class RestoreAfterBrokerRestart(bootsteps.StartStopStep):  # type: ignore[misc]
    """A consumer step: on every (re)connect, restore what a Redis restart orphaned; and a
    reconnect that tries every RECONNECT_MAX seconds (reconnect_promptly)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        reconnect_promptly(c)

    def start(self, c: Any) -> None:
        channel = getattr(getattr(c, "task_consumer", None), "channel", None)
        if channel is None or not hasattr(channel, "unacked_index_key"):
            return  # not the Redis transport
        try:
            server = server_info(channel)  # uptime and run id of the Redis process reached
            n = restore_orphaned(channel, server)
            if n:
                log.warning("restored %d message(s) left unacknowledged by a Redis restart", n)
            restart_lanes_once(channel, c.app, server)
        except Exception as exc:  # never stop a worker from consuming
            log.warning("could not recover from a Redis restart: %s: %s", type(exc).__name__, exc)
        try:
            n = restore_predecessors_messages(channel)
            if n:
                log.warning("restored %d message(s) the previous run of this node had fetched", n)
        except Exception as exc:
            log.warning("could not restore the previous run's messages: %s: %s", type(exc).__name__, exc)


def restore_predecessors_messages(channel: Any) -> int:
    """A node worker is the only consumer of its node and NIC queues (not of its cluster's
    queue, which every node of the cluster serves): the unacked messages of those queues
    fetched before this run of the worker began were fetched by its previous run, which is
    gone. Restored now, they run at once instead of after the visibility timeout."""
    node = current_node()
    began = incarnation.started_at(incarnation.current())
    if node is None or not began:
        return 0
    own = {q.name for q in node_queues(node)} - {cluster_queue(node.cluster)}
    return restore_reserved_before(channel, own, began)
