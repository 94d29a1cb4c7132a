"""The public Python API: dms.sync and dms.sync_signature, and the docs/api.md example."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

import dms
from dms.errors import PathError, RequestExists
from dms.model import RequestState
from dms.request import make_params, task_request_id
from tests.conftest import unique_id, wait_for_state
from tests.example_tasks import my_task

pytestmark = pytest.mark.usefixtures("worker")

DOCS = Path(__file__).parents[2] / "docs" / "api.md"


def doc_example(name: str) -> str:
    match = re.search(rf"<!-- example:{name} -->\s*```python\n(.*?)```", DOCS.read_text(), re.S)
    assert match, f"docs/api.md has no example {name!r}"
    return match.group(1)


def test_the_chain_example_in_docs_api_runs(tmp_path: Path, dms_app: Any, capsys: pytest.CaptureFixture[str]) -> None:
    source, destination = tmp_path / "src", tmp_path / "dst"
    source.mkdir()
    for i in range(12):
        (source / f"f{i}").write_bytes(os.urandom(300))
    exec(compile(doc_example("chain"), "docs/api.md", "exec"), {"source": str(source), "destination": str(destination),
                                                                "my_task": my_task})  # fmt: skip
    printed = capsys.readouterr().out
    assert "'seen_state': 'SUCCEEDED'" in printed and "'files': 12" in printed
    assert sorted(os.listdir(destination)) == sorted(os.listdir(source))


def test_sync_returns_the_summary(tmp_path: Path, dms_app: Any) -> None:
    (tmp_path / "src" / "d").mkdir(parents=True)
    (tmp_path / "src" / "d" / "x").write_bytes(b"x" * 1000)
    summary = dms.sync(str(tmp_path / "src"), str(tmp_path / "dst"), parallelism=2, chunk_size="1MiB")
    assert summary["state"] == "SUCCEEDED" and summary["files_done"] == 1 and summary["bytes_done"] == 1000
    assert (tmp_path / "dst" / "d" / "x").read_bytes() == b"x" * 1000


def test_sync_refuses_bad_input_before_starting(tmp_path: Path, dms_app: Any) -> None:
    with pytest.raises(PathError, match="does not exist"):
        dms.sync(str(tmp_path / "nope"), str(tmp_path / "dst"))
    with pytest.raises(ValueError, match="parallelism"):
        dms.sync_signature(str(tmp_path), str(tmp_path / "d"), parallelism=0)
    with pytest.raises(ValueError, match="not a size"):
        dms.sync_signature(str(tmp_path), str(tmp_path / "d"), chunk_size="big")


def test_a_sync_task_that_cannot_plan_ends_failed_saying_why(tmp_path: Path, dms_app: Any, store: Any,
                                                            start_worker: Any) -> None:  # fmt: skip
    """A cross-cluster dms.sync taken by a plain worker (no clusters in its workers.yml) failed
    with an uncaught ConfigError and left its request in PLANNING for good, and the same for
    any failure of the task itself: its first argument is a path, not the request id. Both
    the named id and the one derived from the task's id end FAILED, saying why."""
    from dms.route.queues import route_task

    queue = unique_id("t.plain").replace("-", "_")
    start_worker(queue, concurrency=1)
    named = unique_id("cannot-plan")
    kwargs = {"request_id": named, "source_cluster": "nowhere", "destination_cluster": "elsewhere"}
    assert route_task("dms.sync", (), kwargs, {}) == {"queue": "dms.cluster.nowhere"}  # where it would go
    dms_app.send_task("dms.sync", args=("/data/a", "/data/b"), kwargs=kwargs, queue=queue)
    info = wait_for_state(store, named, {"FAILED"}, timeout=60)
    assert "planning failed" in info["error"] and "nowhere" in info["error"], info["error"]
    assert info["end_reason"] == "planning"
    # a failure of the task itself, for the id derived from the task's, and none for an id that
    # names another request (a second dms.sync with the same id and other paths)
    from dms.tasks.plan import sync as sync_task

    (tmp_path / "src").mkdir()
    task_id = unique_id("task")
    rid = task_request_id(task_id)
    store.create(make_params(str(tmp_path / "src"), str(tmp_path / "dst"), request_id=rid))
    sync_task.on_failure(RuntimeError("boom"), task_id, (str(tmp_path / "src"), str(tmp_path / "dst")), {}, None)
    info = store.get(rid)
    assert info["state"] == "FAILED" and "RuntimeError: boom" in info["error"], info
    other = unique_id("other")
    store.create(make_params(str(tmp_path / "src"), str(tmp_path / "dst"), request_id=other))
    sync_task.on_failure(RequestExists(other), "t2", ("/x", "/y"), {"request_id": other}, None)
    assert store.get(other)["state"] == "PENDING"
    store.set_state(other, RequestState.FAILED, error="ended by the test")


@pytest.mark.parametrize("on_timeout", ["leave", "cancel"])
def test_a_sync_that_times_out_says_what_became_of_its_request(
    tmp_path: Path, dms_app: Any, store: Any, on_timeout: str
) -> None:
    """dms.sync(timeout=...) raises SyncTimeout (a TimeoutError) naming the request: left
    running in the service, or cancelled and ended, with nothing published."""
    from dms.client.submit import cancel, wait
    from dms.errors import SyncTimeout

    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):  # sparse: cheap to create, and still 3 GiB to move
        with open(src / f"big{i}", "wb") as f:
            f.truncate(1024 * 1024 * 1024)
    rid = f"timeout-{on_timeout}-{os.getpid()}"
    with pytest.raises(SyncTimeout) as caught:
        dms.sync(str(src), str(tmp_path / "dst"), request_id=rid, timeout=1.0, on_timeout=on_timeout,
                 parallelism=1, chunk_size="256MiB", fsync=False)  # fmt: skip
    assert isinstance(caught.value, TimeoutError) and caught.value.request_id == rid
    if on_timeout == "leave":
        assert not caught.value.cancelled and f"dms-submit watch {rid}" in str(caught.value)
        assert store.get(rid)["state"] not in ("SUCCEEDED", "FAILED", "CANCELLED")
        cancel(store, rid)
        wait(store, rid, timeout=120)
    else:
        assert caught.value.cancelled and "it ended CANCELLED" in str(caught.value), caught.value
    assert store.get(rid)["state"] == "CANCELLED"
    assert [p for p in (tmp_path / "dst").rglob("*") if p.is_file()] == []


def test_a_task_of_another_celery_app_chained_after_a_sync_runs_in_that_apps_worker(
    tmp_path: Path, dms_app: Any, redis_server: Any
) -> None:
    """chain(dms.sync_signature(...), record.s(...), then.s(...)) where record and then belong
    to another Celery app, on another Redis database, with its own default queue and its own
    worker process (not DMS's): record receives the summary there, and then runs after it."""
    import sys
    import time

    from celery import chain

    from dms.client.processes import stop_process_group
    from tests.services import start_logged

    other_broker = redis_server.broker_url.replace("virtual_host=0", "virtual_host=1")
    os.environ["OTHER_BROKER_URL"] = other_broker
    import tests.other_app as other

    other.app.conf.broker_url = other_broker
    env = {**os.environ, "OTHER_BROKER_URL": other_broker}
    worker = start_logged("other", [sys.executable, "-m", "celery", "-A", "tests.other_app", "worker", "-Q", "other.q",
                                    "-c", "1", "-P", "solo", "--without-mingle", "--without-gossip", "-l", "INFO"],
                          env, tmp_path / "other.log", (" ready.",), 60)  # fmt: skip
    try:
        source, destination = tmp_path / "src", tmp_path / "dst"
        source.mkdir()
        (source / "f").write_bytes(b"chained")
        got, after = tmp_path / "summary.json", tmp_path / "then.txt"
        chain(dms.sync_signature(str(source), str(destination)), other.record.s(str(got)),
              other.then.s(str(after))).apply_async()  # fmt: skip
        deadline = time.monotonic() + 120
        while not after.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        log = (tmp_path / "other.log").read_text()
        assert got.exists() and after.read_text() == "then ran", log[-3000:]
        summary = json.loads(got.read_text())
        assert summary["state"] == "SUCCEEDED" and summary["files_done"] == 1, summary
        assert (destination / "f").read_bytes() == b"chained"
    finally:
        stop_process_group(worker)
        os.environ.pop("OTHER_BROKER_URL", None)
