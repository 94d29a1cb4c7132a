"""Session fixtures: one private redis-server and one worker serving dms.control + dms.data.

Tests that need their own topology start extra workers on their own queue
names (a request records the queues its tasks go to), so they never disturb
the shared worker.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dms.model import SyncParams
from dms.request import make_params
from tests.services import RedisServer, Worker

_counter = itertools.count()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dms_app(redis_server: RedisServer) -> Any:
    """The dms Celery app of this test process, pointed at the test Redis."""
    os.environ.update(redis_server.env())
    from dms.worker.app import app

    app.conf.broker_url = redis_server.broker_url
    app.conf.result_backend = redis_server.broker_url
    return app


@pytest.fixture(scope="session")
def store(redis_server: RedisServer, dms_app: Any) -> Any:
    from dms.state.requests import RequestStore, connect

    return RequestStore(connect(redis_server.state_url))


@pytest.fixture(scope="session")
def worker(redis_server: RedisServer, dms_app: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    w = Worker("shared", "dms.control,dms.data", redis_server.env(), tmp_path_factory.mktemp("logs") / "shared.log")
    w.start()
    yield w
    w.stop()


@pytest.fixture
def start_worker(redis_server: RedisServer, tmp_path: Path) -> Iterator[Any]:
    """Start extra workers on given queues; all are stopped after the test."""
    started: list[Worker] = []

    def start(queues: str, concurrency: int = 2) -> Worker:
        name = f"w{next(_counter)}"
        w = Worker(name, queues, redis_server.env(), tmp_path / f"{name}.log", concurrency)
        started.append(w.start())
        return w

    yield start
    for w in started:
        w.stop()


def unique_id(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_counter)}-{int(time.time() * 1000) % 100000}"


def on_own_queues(prefix: str, source: Path, destination: Path, **options: Any) -> SyncParams:
    """A request of a new id whose plan and units go to queues of its own (t.ctl.ID, t.data.ID):
    a test starts, stops and throttles exactly the workers of its request."""
    rid = unique_id(prefix)
    q = rid.replace("-", "_")
    return make_params(str(source), str(destination), request_id=rid, control_queue=f"t.ctl.{q}",
                       data_queue=f"t.data.{q}", **options)  # fmt: skip


def wait_for_state(store: Any, request_id: str, states: set[str], timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = store.get(request_id)
        if info and info["state"] in states:
            return info  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"request {request_id} did not reach {states}: {store.get(request_id)}")


@pytest.fixture
def held_request(dms_app: Any, store: Any, start_worker: Any) -> Any:
    """Submit a request on private queues: a worker plans it, and its transfers wait
    until the test starts a worker on `params.data_queue`. Returns (params, planner)."""
    from dms.client.submit import submit
    from dms.model import SyncParams

    def hold(src: Path, dst: Path, prefix: str, **fields: Any) -> tuple[SyncParams, Worker]:
        rid = unique_id(prefix)
        q = rid.replace("-", "_")
        params = SyncParams(rid, str(src), str(dst), control_queue=f"t.ctl.{q}", data_queue=f"t.data.{q}", **fields)
        planner = start_worker(params.control_queue)
        submit(dms_app, store, params)
        wait_for_state(store, rid, {"TRANSFERRING"})
        return params, planner

    return hold


def pytest_addoption(parser: Any) -> None:
    parser.addoption("--long", action="store_true", default=False,
                     help="the long fault schedule of tests/integration/test_chaos.py")  # fmt: skip


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How much the generative tests tried (tests/generative.py), at the end of every run."""
    from tests.generative import PROFILE, REPORT

    if not REPORT:
        return
    terminalreporter.section(f"generative tests (profile {PROFILE})")
    for name, t in sorted(REPORT.items()):
        steps = f", {t.steps} steps" if t.steps else ""
        terminalreporter.write_line(f"{name}: {t.examples} examples{steps} in {t.seconds:.1f} s")
        for note in t.notes[:10]:
            terminalreporter.write_line(f"    {note}")
