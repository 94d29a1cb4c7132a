"""Flower, really started, watching a real sync; a real headless Chromium reads its tasks page."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from dms.client.processes import stop_process_group
from dms.client.submit import submit, wait
from dms.model import SyncParams
from tests.conftest import unique_id
from tests.services import RedisServer

pytestmark = pytest.mark.usefixtures("worker")

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bytes(response.read())


def test_dms_tasks_are_listed_in_flower(tmp_path: Path, redis_server: RedisServer, dms_app: Any, store: Any) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is missing: the README's test command installs it (scripts/install-system-deps.sh)"
    port = free_port()
    # the HTTP API unauthenticated: for this loopback test only (docs/operations.md, security caveats)
    env = {**os.environ, **redis_server.env(), "FLOWER_UNAUTHENTICATED_API": "true"}
    log = open(tmp_path / "flower.log", "wb")  # noqa: SIM115  (closed below)
    flower = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "dms", "flower", "--address=127.0.0.1", f"--port={port}"],
        env=env, cwd=tmp_path, stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                get(f"{base}/healthcheck")
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(1.0)  # its event receiver subscribes right after the HTTP server is up
        src = tmp_path / "src"
        (src / "batch").mkdir(parents=True)
        with open(src / "big.bin", "wb") as f:
            f.truncate(3 << 20)
        for i in range(30):
            (src / "batch" / f"f{i:02d}").write_bytes(os.urandom(100))
        params = SyncParams(
            unique_id("flower"), str(src), str(tmp_path / "dst"), chunk_size=1 << 20, unit_bytes=1 << 20
        )
        submit(dms_app, store, params)
        assert wait(store, params.request_id, timeout=120)["state"] == "SUCCEEDED"
        names: set[str] = set()
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline + 60 and not {"dms.plan", "dms.transfer", "dms.finalize"} <= names:
            query = "draw=1&start=0&length=200&order%5B0%5D%5Bcolumn%5D=0&columns%5B0%5D%5Bdata%5D=name"
            payload = json.loads(get(f"{base}/tasks/datatable?{query}"))
            rows = [r for r in payload["data"] if params.request_id in str(r.get("args", ""))]
            names = {r["name"] for r in rows}
            time.sleep(0.3)
        assert {"dms.plan", "dms.transfer", "dms.finalize"} <= names, rows
        # readable arguments (Flower's task page and API; its table hides the args column):
        # what each transfer moves, a byte range of one file or a batch of files
        assert any("big.bin [2097152, +1.0 MiB)" in r["args"] for r in rows), [r["args"] for r in rows]
        assert any("pieces" in r["args"] and "batch/f00" in r["args"] for r in rows)
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "flower-tasks.png"
        shot.unlink(missing_ok=True)
        profile = tmp_path / "chromium-profile"
        browse = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000",
                  "--window-size=1600,1000"]  # fmt: skip
        dom = subprocess.run([*browse, "--dump-dom", f"{base}/tasks"], capture_output=True, text=True, timeout=120)
        assert dom.returncode == 0, dom.stderr[-2000:]
        for name in ("dms.plan", "dms.transfer", "dms.finalize"):
            assert name in dom.stdout, f"{name} not rendered on Flower's tasks page"
        subprocess.run([*browse, f"--screenshot={shot}", f"{base}/tasks"], capture_output=True, timeout=120)
        assert shot.exists() and shot.stat().st_size > 10_000

        # the curl example of docs/operations.md: submit through Flower's HTTP API
        via_api = unique_id("via-flower")
        body = {"args": [str(src), str(tmp_path / "dst2")], "kwargs": {"request_id": via_api, "parallelism": 2,
                                                                       "chunk_size": "64MiB"}}  # fmt: skip
        post = urllib.request.Request(f"{base}/api/task/async-apply/dms.sync", data=json.dumps(body).encode(),
                                      headers={"Content-Type": "application/json"}, method="POST")  # fmt: skip
        with urllib.request.urlopen(post, timeout=10) as response:
            assert "task-id" in json.loads(response.read())
        deadline = time.monotonic() + 60
        while store.get(via_api) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert wait(store, via_api, timeout=120)["state"] == "SUCCEEDED"
        assert sorted(os.listdir(tmp_path / "dst2" / "batch")) == sorted(os.listdir(src / "batch"))

        # with cluster arguments, Flower's process routes it to the source cluster's queue (no
        # node of cluster "flowerx" runs here: the message waits there, and is removed)
        body = {"args": ["/data/a", "/data/b"], "kwargs": {"request_id": unique_id("via-flower-x"),
                                                           "direction": "flowerx_TO_flowery"}}  # fmt: skip
        post = urllib.request.Request(f"{base}/api/task/async-apply/dms.sync", data=json.dumps(body).encode(),
                                      headers={"Content-Type": "application/json"}, method="POST")  # fmt: skip
        with urllib.request.urlopen(post, timeout=10) as response:
            task_id = json.loads(response.read())["task-id"]
        try:
            assert any(task_id in m for m in store.queued_messages("dms.cluster.flowerx"))
            assert not any(task_id in m for m in store.queued_messages("dms.control"))
        finally:
            store.r.delete("dms.cluster.flowerx")
    finally:
        stop_process_group(flower, grace=10)
        log.close()
