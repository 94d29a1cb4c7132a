"""dms.state.resp against a real redis-server: it answers like redis-py, a RequestStore over it
behaves like one over redis-py, it fails fast when Redis is absent and rides out a restart.
(Its end-of-request subscription: test_client_messages.py; its publish: the same file.)"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import dms.state.resp
from dms.client.processes import stop_process_group
from dms.errors import BrokerUnavailable
from dms.model import RequestState
from dms.request import make_params
from dms.state.requests import RequestStore, connect
from dms.state.resp import RespClient, RespError, connect_light
from tests.services import RedisServer


def _exercise(r: Any, p: str) -> list[Any]:
    """The commands RequestStore sends, with keys under prefix `p`; every reply, in order."""
    out: list[Any] = []
    out += [r.set(f"{p}s", "v"), r.set(f"{p}s", "w", nx=True), r.set(f"{p}t", 1, nx=True, ex=100), r.get(f"{p}s")]
    out += [r.getdel(f"{p}s"), r.get(f"{p}s"), r.exists(f"{p}s", f"{p}t", f"{p}none")]
    out += [r.hset(f"{p}h", mapping={"a": 1, "b": 2.5, "c": "x y"}), r.hset(f"{p}h", "d", "4")]
    out += [r.hsetnx(f"{p}h", "a", 9), r.hsetnx(f"{p}h", "e", 5), r.hget(f"{p}h", "b"), r.hget(f"{p}h", "zz")]
    out += [r.hmget(f"{p}h", "a", "zz", "c"), r.hgetall(f"{p}h"), sorted(r.hkeys(f"{p}h")), sorted(r.hvals(f"{p}h"))]
    out += [r.hdel(f"{p}h", "a", "b", "zz"), r.hgetall(f"{p}none")]
    out += [r.rpush(f"{p}l", "1", "2", "3"), r.lpush(f"{p}l", "0"), r.ltrim(f"{p}l", 0, 2), r.lrange(f"{p}l", 0, -1)]
    out += [r.sadd(f"{p}set", "x", "y", "x"), r.smembers(f"{p}set")]
    out += [r.zadd(f"{p}z", {"a": 1.0, "b": 2.0, "c": 3.5}), r.zrevrangebyscore(f"{p}z", "+inf", 2, start=0, num=5)]
    out += [r.zrevrangebyscore(f"{p}z", "+inf", "-inf"), r.zrem(f"{p}z", "a", "nope")]
    out += [r.expire(f"{p}h", 100), r.persist(f"{p}h"), r.persist(f"{p}h"), r.publish(f"{p}chan", "hi")]
    out.append(sorted(k[len(p) :] for k in r.scan_iter(match=f"{p}*", count=2)))
    pipe = r.pipeline(transaction=False)
    pipe.hgetall(f"{p}h").hvals(f"{p}none").rpush(f"{p}l", "9")
    out.append(pipe.execute())
    pipe = r.pipeline()
    pipe.hdel(f"{p}h", "c")
    pipe.hset(f"{p}h", mapping={"n": 0})
    pipe.persist(f"{p}h")
    out.append(pipe.execute())
    script = r.register_script("return {KEYS[1], ARGV[1], redis.call('HGET', KEYS[1], 'n')}")
    out += [script(keys=[f"{p}h"], args=["arg"])[1:], script(keys=[f"{p}h"], args=[7])[1:]]
    out.append(r.delete(f"{p}h", f"{p}l", f"{p}t", f"{p}set", f"{p}z"))
    return out


def test_resp_client_answers_every_command_like_redis_py(redis_server: RedisServer, store: Any) -> None:
    light = connect_light(redis_server.state_url)
    try:
        assert _exercise(light, "resp:light:") == _exercise(store.r, "resp:pyred:")
        light.set("resp:light:str", "v")
        with pytest.raises(RespError, match="WRONGTYPE"):
            light.hget("resp:light:str", "x")
        with pytest.raises(AttributeError, match="use redis-py"):
            light.blpop("x")  # a command it does not carry fails loudly, not wrongly
    finally:
        light.close()


def _drive(store: RequestStore, request_id: str, src: Path) -> dict[str, Any]:
    """A request through the store methods a client process calls; its record at the end."""
    params = make_params(str(src), str(src.parent / "dst"), request_id=request_id)
    store.create(params)
    store.log_event(request_id, "submitted", source=str(src))
    store.add_dryrun(request_id, ["copy a", "copy b"])
    store.request_cancel(request_id)
    assert store.is_cancelled(request_id) and store.state(request_id) is RequestState.PENDING
    assert store.set_state(request_id, RequestState.CANCELLED, error="asked")
    assert not store.set_state(request_id, RequestState.SUCCEEDED)  # ended: first terminal state wins
    store.reset_for_resume(request_id, store.params(request_id))
    record = store.get(request_id) or {}
    drop = {"created_at", "updated_at", "finished_at", "params"}
    return {
        "record": {k: v for k, v in record.items() if k not in drop},
        "events": [e["event"] for e in store.events(request_id)],
        "dryrun": store.dryrun(request_id),
        "listed": [r["request_id"] for r in store.list_requests(limit=1000)].count(request_id),
    }


def test_a_request_store_over_resp_behaves_as_over_redis_py(redis_server: RedisServer, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    light = RequestStore(connect_light(redis_server.state_url))
    heavy = RequestStore(connect(redis_server.state_url))
    stamp = time.time_ns()
    assert _drive(light, f"resp-light-{stamp}", tmp_path / "src") == _drive(heavy, f"resp-pyred-{stamp}",
                                                                             tmp_path / "src")  # fmt: skip


def test_no_redis_fails_fast_and_a_restart_is_ridden_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = RedisServer(tmp_path)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="cannot reach the DMS Redis"):
        connect_light(server.state_url)
    assert time.monotonic() - started < 5
    monkeypatch.setattr(dms.state.resp, "RETRY_SECONDS", 20.0)
    server.start()
    try:
        client = connect_light(server.state_url)
        client.set("k", "before")
        server.stop()
        restarter = threading.Timer(1.0, server.start)
        restarter.start()
        try:
            assert client.set("k", "after") is True  # sent to a dead socket, then to the new server
            assert client.get("k") == "after"
        finally:
            restarter.join()
        client.close()
        server.stop()
        monkeypatch.setattr(dms.state.resp, "RETRY_SECONDS", 0.5)
        dead = RespClient(client.address)
        with pytest.raises(ConnectionError, match="unreachable"):
            dead.get("k")
    finally:
        server.stop()


def test_a_redis_loading_its_data_is_waited_for_not_an_error(tmp_path: Path) -> None:
    """Just after a restart, Redis answers every command with LOADING until its data is read
    back (0.1 s for a small AOF, seconds for a large one). `dms-submit sync --wait` died there
    with a traceback (RespError: LOADING ...), and a command that began then failed with
    "cannot reach the DMS Redis", while the request went on to SUCCEEDED. Both clients now
    wait for the load, as they wait out a restart."""
    import redis

    seed = RedisServer(tmp_path, options=["--enable-debug-command", "local"]).start()
    try:
        redis.Redis(unix_socket_path=seed.socket).execute_command("DEBUG", "POPULATE", 2_000_000, "key", 100)
        redis.Redis(unix_socket_path=seed.socket).set("mark", "kept")
        redis.Redis(unix_socket_path=seed.socket).save()
    finally:
        seed.stop()
    for attempt in ("resp", "redis-py"):
        server = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", seed.socket, "--save", "",
                                   "--appendonly", "no", "--dir", str(tmp_path), "--logfile",
                                   str(tmp_path / f"{attempt}.log")], start_new_session=True)  # fmt: skip
        try:
            deadline = time.monotonic() + 20
            while not os.path.exists(seed.socket) and time.monotonic() < deadline:
                time.sleep(0.005)
            loading = False
            while not loading and time.monotonic() < deadline:
                with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as raw:
                    raw.connect(seed.socket)
                    raw.sendall(b"PING\r\n")
                    loading = raw.recv(100).startswith(b"-LOADING")
            assert loading, "Redis was never seen loading: the case did not happen"
            if attempt == "resp":
                client = connect_light(seed.state_url)  # refused by LOADING before: BrokerUnavailable
                assert client.get("mark") == "kept"
                client.close()
            else:
                assert connect(seed.state_url).get("mark") == "kept"
        finally:
            stop_process_group(server)


def test_passwords_and_acl_users_in_the_url_are_used(tmp_path: Path) -> None:
    """`redis://:pw@...` and `redis://user:pw@...` authenticate (AUTH, then SELECT); a wrong
    password is BrokerUnavailable at first contact, like an absent Redis."""
    server = RedisServer(tmp_path).start()
    try:
        admin = connect(server.state_url)
        admin.acl_setuser("dms", enabled=True, passwords=["+us3r"], keys=["*"], commands=["+@all"])
        admin.config_set("requirepass", "s3cret")
        sock = server.socket
        light = connect_light(f"unix://:s3cret@{sock}?db=2")
        light.set("k", "in db 2")
        assert light.get("k") == "in db 2"
        light.close()
        as_user = connect_light(f"unix://dms:us3r@{sock}?db=2")
        assert as_user.get("k") == "in db 2"
        as_user.close()
        with pytest.raises(BrokerUnavailable, match="cannot reach the DMS Redis") as refused:
            connect_light(f"unix://:wrong@{sock}?db=0")
        assert "wrong" not in str(refused.value) and ":***@" in str(refused.value)  # never print a password
        with pytest.raises(BrokerUnavailable) as refused_py:
            connect(f"unix://:wrong@{sock}?db=0")  # redis-py's path says the same, as carefully
        assert "wrong" not in str(refused_py.value)
        with pytest.raises(BrokerUnavailable):
            connect_light(f"unix://{sock}?db=0")  # no password at all: NOAUTH
    finally:
        server.stop()
