"""Publish a DMS task from a process that does not run the Celery app: dms-submit, dms.sync().

A client publishes one message per request (dms.plan). Building a Celery app to do it
(importing celery, its app and backend machinery, then send_task) costs a cold
`dms-submit` start more than the rest of a small no-change re-sync does (figures in
decision 0024). kombu, the messaging library Celery itself publishes with, does the same
publish for a fraction of the imports.

The message is Celery's task protocol 2 ("Message Protocol" in Celery's docs), field for
field as `app.amqp.as_task_v2` builds it, published like `send_task` does: by the default
exchange to the queue named as routing key, the queue declared first, with the publish
retry policy as the workers' (dms.defaults: ride out a Redis restart). tests/integration/test_client_messages.py
compares it with the message Celery builds, so a Celery upgrade that changes the protocol
fails a test, not a sync. Workers and the janitor keep using the Celery app.

RespSender goes one step further for a plain Redis broker (decision 0018): it writes what
kombu's Redis transport writes for that publish (the queue's binding, then the message
envelope pushed on the queue's list) over dms.state.resp, so a client loads neither kombu nor
redis-py. The same test compares its envelope and bindings with kombu's.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from typing import Any, Protocol

from dms.defaults import BROKER_TRANSPORT_OPTIONS, PUBLISH_RETRY_POLICY
from dms.settings import redacted
from dms.state.resp import RespClient, light_url

__all__ = ["KombuSender", "RespSender", "TaskSender", "kombu_envelope", "task_message"]

#: kombu's Redis transport: a queue's bindings live in these sets, members joined by this separator.
_BINDING_KEYS = ("_kombu.binding.%s", "_kombu.binding_permanent.%s")
_BINDING_SEPARATOR = "\x06\x16"


class TaskSender(Protocol):
    """What submitting a request needs of a Celery app: the Celery app itself or a KombuSender."""

    def send_task(self, name: str, args: tuple[Any, ...] = (), *, queue: str) -> Any: ...


def task_message(name: str, args: tuple[Any, ...], task_id: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(body, headers, properties) of a task message in Celery's protocol 2, no options set."""
    headers: dict[str, Any] = {
        "lang": "py",
        "task": name,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": repr(tuple(args)),
        "kwargsrepr": "{}",
        "origin": f"gen{os.getpid()}@{socket.gethostname()}",
        "ignore_result": None,  # as send_task sends it: the task's own setting applies
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    body: tuple[Any, ...] = (list(args), {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None})
    properties = {"correlation_id": task_id, "reply_to": ""}
    return body, headers, properties


class KombuSender:
    """Publishes task messages to DMS's broker with kombu; one connection, opened on first use."""

    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        self._connection: Any = None

    def send_task(self, name: str, args: tuple[Any, ...] = (), *, queue: str) -> str:
        """Publish task `name` with `args` to `queue`; returns the task id."""
        from kombu import Connection, Exchange, Queue  # type: ignore[attr-defined]

        if self._connection is None:
            options = BROKER_TRANSPORT_OPTIONS
            self._connection = Connection(self.broker_url, transport_options=options)  # type: ignore[no-untyped-call]
        task_id = str(uuid.uuid4())
        body, headers, properties = task_message(name, args, task_id)
        producer = self._connection.Producer(serializer="json")
        producer.publish(
            body,
            exchange="",
            routing_key=queue,
            headers=headers,
            delivery_mode=2,
            declare=[Queue(queue, Exchange(queue), routing_key=queue)],  # type: ignore[no-untyped-call]
            retry=True,
            retry_policy=PUBLISH_RETRY_POLICY,
            **properties,
        )
        return task_id

    def close(self) -> None:
        if self._connection is not None:
            self._connection.release()
            self._connection = None


def kombu_envelope(body: Any, headers: dict[str, Any], properties: dict[str, Any], queue: str) -> dict[str, Any]:
    """The JSON document kombu's Redis transport pushes on `queue`'s list for a persistent
    publish by the default exchange (Channel.prepare_message, then basic_publish)."""
    return {
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            **properties,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }


class RespSender:
    """Publishes task messages to a plain Redis broker as kombu would, over dms.state.resp."""

    def __init__(self, broker_url: str) -> None:
        address = light_url(broker_url)
        if address is None:
            raise ValueError(f"not a plain Redis broker URL: {redacted(broker_url)} (use KombuSender)")
        self._client = RespClient(address)

    def send_task(self, name: str, args: tuple[Any, ...] = (), *, queue: str) -> str:
        """Publish task `name` with `args` to `queue`, declared as kombu declares it; returns the
        task id. A lost connection is retried (dms.state.resp): a duplicate dms.plan is harmless."""
        task_id = str(uuid.uuid4())
        body, headers, properties = task_message(name, args, task_id)
        member = _BINDING_SEPARATOR.join([queue, "", queue])
        pipe = self._client.pipeline(transaction=False)
        for key in _BINDING_KEYS:
            pipe.sadd(key % queue, member)
        pipe.lpush(queue, json.dumps(kombu_envelope(body, headers, properties, queue)))
        pipe.execute()
        return task_id

    def close(self) -> None:
        self._client.close()
