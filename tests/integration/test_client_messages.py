"""The client side of a request against a real Redis: the dms.plan message the CLI
publishes (with kombu, or with RespSender as kombu would) is the message Celery would
publish, and a waiter wakes on the end."""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

import pytest

from dms.client.submit import wait
from dms.model import RequestState
from dms.request import make_params
from dms.state.messages import KombuSender, RespSender
from dms.state.requests import RequestStore
from dms.state.resp import connect_light
from tests.services import RedisServer

#: Fields that differ between any two messages: fresh ids.
_FRESH = {"id", "root_id", "correlation_id", "delivery_tag", "reply_to"}


def _only_message(redis_client: Any, queue: str) -> dict[str, Any]:
    raw = redis_client.lrange(queue, 0, -1)
    assert len(raw) == 1, raw
    message: dict[str, Any] = json.loads(raw[0])
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def _without_fresh(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k not in _FRESH}


@pytest.mark.parametrize("sender_class", [KombuSender, RespSender])
def test_the_client_publishes_the_message_celery_publishes(
    redis_server: RedisServer, dms_app: Any, store: Any, sender_class: Any
) -> None:
    r = store.r
    queues = ("test.pub.celery", "test.pub.kombu", "test.pub.witness")
    r.delete(*queues, *(f"_kombu.{kind}.{q}" for kind in ("binding", "binding_permanent") for q in queues))
    dms_app.send_task("dms.plan", args=("r-1", 7), queue="test.pub.celery")
    sender = sender_class(redis_server.broker_url)
    try:
        task_id = sender.send_task("dms.plan", args=("r-1", 7), queue="test.pub.kombu")
    finally:
        sender.close()
    theirs = _only_message(r, "test.pub.celery")
    ours = _only_message(r, "test.pub.kombu")

    assert ours["headers"]["id"] == ours["headers"]["root_id"] == ours["properties"]["correlation_id"] == task_id
    assert set(ours) == set(theirs)
    assert ours["body"] == theirs["body"] == [["r-1", 7], {}, {"callbacks": None, "errbacks": None,
                                                               "chain": None, "chord": None}]  # fmt: skip
    # Celery puts the task's time limits in the headers only when the publishing process has
    # the task registered (a test that imported dms.tasks.* did); the worker applies its own
    # limits either way (dms.worker.celery_settings), so the client sends none
    ours_headers, theirs_headers = _without_fresh(ours["headers"]), _without_fresh(theirs["headers"])
    assert ours_headers.pop("timelimit") == [None, None]
    assert theirs_headers.pop("timelimit") in ([None, None], [3600, 3300])
    assert ours_headers == theirs_headers
    ours_props, theirs_props = _without_fresh(ours["properties"]), _without_fresh(theirs["properties"])
    assert ours_props.pop("delivery_info") == {"exchange": "", "routing_key": "test.pub.kombu"}
    assert theirs_props.pop("delivery_info") == {"exchange": "", "routing_key": "test.pub.celery"}
    assert ours_props == theirs_props
    for key in ("content-type", "content-encoding"):
        assert ours[key] == theirs[key]
    # declared like Celery declares it: the queue's bindings are recorded, as kombu records them
    witness = KombuSender(redis_server.broker_url)
    try:
        witness.send_task("dms.plan", args=("r-1", 7), queue="test.pub.witness")
    finally:
        witness.close()
    for prefix in ("_kombu.binding.", "_kombu.binding_permanent."):
        kombus = {m.replace("test.pub.witness", "Q") for m in r.smembers(prefix + "test.pub.witness")}
        assert kombus and {m.replace("test.pub.kombu", "Q") for m in r.smembers(prefix + "test.pub.kombu")} == kombus
    assert r.smembers("_kombu.binding.test.pub.kombu") == {"test.pub.kombu\x06\x16\x06\x16test.pub.kombu"}
    r.delete("test.pub.celery", "test.pub.kombu", "test.pub.witness")


@pytest.mark.parametrize("light", [False, True], ids=["redis-py", "dms.state.resp"])
def test_wait_wakes_when_the_request_ends_not_at_its_next_poll(
    redis_server: RedisServer, store: Any, tmp_path: Any, light: bool
) -> None:
    """wait() with a 60 s poll returns as soon as another client ends the request: the end is
    published as the state is written (a waiter that only polled would sleep a minute). The
    waiter subscribes with redis-py or with dms.state.resp (decision 0018)."""
    (tmp_path / "src").mkdir()
    waiter = RequestStore(connect_light(redis_server.state_url)) if light else store
    params = make_params(str(tmp_path / "src"), str(tmp_path / "dst"), request_id=f"endsig-{time.time_ns()}")
    waiter.create(params)  # not submitted: no worker may end it before this test does
    ender = threading.Timer(0.5, store.set_state, args=(params.request_id, RequestState.SUCCEEDED))
    ender.start()
    started = time.monotonic()
    try:
        info = wait(waiter, params.request_id, poll=60.0, timeout=120.0)
    finally:
        ender.cancel()
    assert info["state"] == RequestState.SUCCEEDED.value
    assert time.monotonic() - started < 30, "the end was not heard; wait() fell back to its 60 s poll"


def test_wait_returns_only_once_the_ended_request_is_settled(store: Any, tmp_path: Any) -> None:
    """finalize writes the terminal state first and announces it once the request is settled
    (NIC load given back, retention set): a waiter polling in between must not return early."""
    (tmp_path / "src").mkdir()
    params = make_params(str(tmp_path / "src"), str(tmp_path / "dst"), request_id=f"settle-{time.time_ns()}")
    store.create(params)
    store.set_state(params.request_id, RequestState.SUCCEEDED, announce=False)  # as finalize does
    returned: list[dict[str, Any]] = []
    waiter = threading.Thread(target=lambda: returned.append(wait(store, params.request_id, poll=0.02, timeout=60)))
    waiter.start()
    waiter.join(1.0)
    assert not returned, "wait() returned a terminal state before the request was settled"
    store.announce_end(params.request_id, RequestState.SUCCEEDED)
    waiter.join(30)
    assert returned and returned[0]["state"] == "SUCCEEDED" and returned[0]["settled"]
