"""A lane whose message was lost, for no reason DMS knows, is restarted once nothing moved for
stall_timeout (dms.worker.standstill), by a plain worker (no --dms-node, so no janitor).

The message is removed from its queue by hand: the edge no test can reach otherwise, and
the shape of every lost-message defect found so far (a unit popped as Redis died; a unit
marked sent by a task of an older incarnation, so nobody published it).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from dms.client.submit import wait
from tests.conftest import unique_id
from tests.services import RedisServer, Worker
from tests.trees import assert_same_tree

STALL = 3  # the data worker's stall_timeout (workers.yml defaults)


def _unit_of(message: str) -> tuple[str, int]:
    """(request id, unit index) of a raw dms.transfer message in a kombu Redis queue."""
    body = json.loads(base64.b64decode(json.loads(message)["body"]))
    return body[0][0], body[0][1]


def test_a_lane_whose_message_was_lost_is_restarted_once_nothing_moved(tmp_path: Path) -> None:
    """On a Redis of its own: the stand-still look is taken by one worker of the deployment at
    a time, and every worker of this one reads the same workers.yml (as a deployment's do)."""
    from dms.state.requests import RequestStore, connect

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(4):
        (src / f"f{i}").write_bytes(bytes([i]) * (2 << 20))  # two chunks each: 8 units
    server = RedisServer(tmp_path / "redis")
    server.directory.mkdir()
    server.start()
    config = tmp_path / "workers.yml"
    config.write_text(f"defaults:\n  stall_timeout: {STALL}\n")
    env = {**server.env(), "DMS_CONFIG": str(config)}
    planner = Worker("plan", "dms.control", env, tmp_path / "plan.log", concurrency=1)
    data = Worker("data", "dms.data", env, tmp_path / "data.log", concurrency=2)
    try:
        planner.start()
        store = RequestStore(connect(server.state_url))
        rid = unique_id("still")
        subprocess.run([sys.executable, "-m", "dms.cli", "sync", str(src), str(dst), "--id", rid, "--chunk-size",
                        "1MiB", "-p", "2"], env={**os.environ, **env}, check=True)  # fmt: skip
        deadline = time.monotonic() + 30
        while not store.is_planned(rid) and time.monotonic() < deadline:
            time.sleep(0.05)
        heads = {_unit_of(m)[1]: m for m in store.queued_messages("dms.data")}
        assert store.get(rid)["tasks_total"] == 8 and sorted(heads) == [0, 1], heads  # a head per lane
        assert store.r.lrem("dms.data", 1, heads[1]) == 1  # lane 1's head is lost
        data.start()
        info = wait(store, rid, timeout=90)
        assert info["state"] == "SUCCEEDED", (info, store.errors(rid), data.log()[-3000:])
        assert_same_tree(src, dst)
        restarted = [e for e in store.events(rid) if e["event"] == "unit re-dispatched"]
        assert restarted and all("nothing moved" in e["reason"] for e in restarted), restarted
        assert 1 in {e["unit"] for e in restarted}, restarted
    finally:
        data.stop()
        planner.stop()
        server.stop()
