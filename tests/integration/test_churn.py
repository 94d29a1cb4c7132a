"""Liveness under churn: a request finishes by itself when a worker restarts before its
heartbeat lapses, or when one of its pool processes hangs while the node keeps beating.

Two loopback "nodes" (r1 in cluster R, s1 in cluster S) with a heartbeat TTL of 60 s, so
the janitor's silent-node sweep never fires here: what recovers the request is the
incarnation a heartbeat names and the stall_timeout (4 s) of a running unit's byte counter.
Without them, the units a killed run had fetched wait for the visibility timeout (2 h).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dms.client.submit import submit, wait
from dms.request import make_params
from tests.clusters import NodeWorker, free_port, write_config, write_secret
from tests.conftest import unique_id
from tests.services import RedisServer
from tests.trees import assert_same_tree, make_tree

STALL_TIMEOUT = 4


@dataclass
class Pair:
    root: Path
    r1: NodeWorker
    s1: NodeWorker

    def secret_file(self, node: str) -> Path:
        return self.root / f"{node}.key"


@pytest.fixture(scope="module")
def pair(redis_server: RedisServer, dms_app: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("churn")
    (root / "r").mkdir()
    (root / "s").mkdir()
    secret = write_secret(root / "r1.key")
    (root / "s1.key").write_bytes(secret.read_bytes())
    (root / "s1.key").chmod(0o600)
    config = write_config(root / "workers.yml", {
        "R": {"nodes": {"r1": {"data": [{"interface": "lo5", "address": "127.0.0.5"}], "port": free_port("127.0.0.5"),
                               "roots": [str(root / "r")], "concurrency": 2, "secret_file": str(root / "r1.key")}}},
        "S": {"nodes": {"s1": {"data": [{"interface": "lo6", "address": "127.0.0.6"}], "port": free_port("127.0.0.6"),
                               "roots": [str(root / "s")], "concurrency": 2, "secret_file": str(root / "s1.key")}}},
    }, defaults={"chunk_size": "4MiB", "heartbeat_interval": 1, "heartbeat_ttl": 60,
                 "stall_timeout": STALL_TIMEOUT})  # fmt: skip
    os.environ["DMS_CONFIG"] = str(config)
    env = {**redis_server.env(), "DMS_TRANSFER_RETRIES": "4"}  # 1+2+4+8 s: covers a restart, keeps a refusal short
    r1 = NodeWorker("r1", config, env, root / "r1.log").start()
    s1 = NodeWorker("s1", config, env, root / "s1.log").start()
    yield Pair(root, r1, s1)
    for w in (r1, s1):
        w.stop()
    os.environ.pop("DMS_CONFIG", None)
    from dms.settings import _load_cached

    _load_cached.cache_clear()


def _submit_big(pair: Pair, dms_app: Any, store: Any, name: str) -> tuple[Path, Path, str]:
    src, dst = pair.root / "r" / name, pair.root / "s" / name
    make_tree(src, files=8, big_files=6, big_size=24 * 1024 * 1024)
    params = make_params(str(src), str(dst), request_id=unique_id(name), direction="R_TO_S", parallelism=4,
                         chunk_size="4MiB")  # 37 units  # fmt: skip
    submit(dms_app, store, params)
    return src, dst, params.request_id


def _claims_running(store: Any, rid: str, at_least: int, timeout: float = 120) -> dict[int, tuple[str, int]]:
    """Wait until the plan is done, a few units are, and `at_least` units are claimed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = store.get(rid) or {}
        running, _ = store.running_units(rid)
        claimed = {u: c for u, c in running.items() if "/" in c[0]}
        if info.get("planned") and info.get("tasks_done", 0) >= 2 and len(claimed) >= at_least:
            return claimed
        time.sleep(0.02)
    raise AssertionError(f"request {rid} never had {at_least} unit(s) running")


@pytest.mark.parametrize("node", ["r1", "s1"])
def test_a_worker_restarted_before_its_heartbeat_lapses_holds_nothing_up(
    pair: Pair, dms_app: Any, store: Any, node: str
) -> None:
    """SIGKILL of a node's whole process group mid-transfer, started again at once (what a
    supervisor's Restart=always does): its new run beats long before the 60 s TTL lapses,
    so nobody sees the node silent. The units the killed run had fetched are put back at
    the new run's start, and its claims are seen to be another incarnation's; the request
    completes byte-exact within seconds, not after the visibility timeout."""
    src, dst, rid = _submit_big(pair, dms_app, store, f"restart-{node}")
    _claims_running(store, rid, at_least=1)
    worker: NodeWorker = getattr(pair, node)
    assert worker.proc is not None
    os.killpg(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait()
    worker.proc = None
    worker.start()
    info = wait(store, rid, timeout=90)
    assert info["state"] == "SUCCEEDED", (info, store.errors(rid))
    assert_same_tree(src, dst)
    assert not list(dst.rglob("*.partial")), "a staging file was left behind"


def test_a_hung_pool_process_of_a_beating_node_is_routed_around(pair: Pair, dms_app: Any, store: Any) -> None:
    """SIGSTOP of the one pool process running a unit: its node keeps beating (the main
    process is fine), so only the unit's byte counter says it is stuck. After
    stall_timeout the unit is published again, another process runs it, the request
    completes; the woken process then finds its unit done and changes nothing."""
    src, dst, rid = _submit_big(pair, dms_app, store, "hung-pool")
    claimed = _claims_running(store, rid, at_least=1)
    unit, (claim, _) = sorted(claimed.items())[0]
    pid = int(claim.rpartition("/")[2])
    os.kill(pid, signal.SIGSTOP)
    try:
        info = wait(store, rid, timeout=90)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert info["state"] == "SUCCEEDED", (info, store.errors(rid))
    moved = [e for e in store.events(rid) if e["event"] == "unit re-dispatched" and e.get("unit") == unit]
    assert moved and "no byte moved" in moved[0]["reason"], store.events(rid)
    time.sleep(3)  # the woken process ends its step and sees its request ended
    after = store.get(rid)
    for key in ("state", "files_done", "files_failed", "bytes_done", "tasks_done"):
        assert after[key] == info[key], (key, info[key], after[key])
    staged = {str(p.relative_to(dst)) for p in dst.rglob("*.partial")}
    assert len(staged) <= 1, staged  # the woken process's piece may land (docs/operations.md, known limits)
    assert_same_tree(src, dst, ignore=staged, mtime_ignored={os.path.dirname(s) or "." for s in staged})


def _restart(worker: NodeWorker) -> None:
    worker.stop()  # a clean stop (SIGTERM): what `systemctl restart` does
    worker.start()


def _sync_small(
    pair: Pair, dms_app: Any, store: Any, name: str, links: bool = False
) -> tuple[Path, Path, dict[str, Any]]:
    src, dst = pair.root / "r" / name, pair.root / "s" / name
    make_tree(src, files=30, big_files=1, big_size=6 * 1024 * 1024)
    if links:  # a hard link (fails with its target) and a symlink (needs no data)
        os.link(src / "dir0" / "file0.txt", src / "dir1" / "same-inode")
        os.symlink("dir0/file0.txt", src / "link")
    params = make_params(str(src), str(dst), request_id=unique_id(name), direction="R_TO_S", chunk_size="4MiB")
    submit(dms_app, store, params)
    return src, dst, wait(store, params.request_id, timeout=120)


def test_the_data_plane_secret_rotates_one_node_at_a_time_with_no_failed_request(
    pair: Pair, dms_app: Any, store: Any
) -> None:
    """docs/operations.md's rotation: each node in turn gets "new" on the first line of its
    secret file and the old secret on the second, and restarts; then the old line goes.
    A sync after every step succeeds with no failed file: a sender whose peer refuses the
    current secret tries the previous one, and a receiver accepts either. A secret nobody
    shares then fails the request after its retries, naming the refused handshake first and
    counting each file once."""
    old = pair.secret_file("r1").read_bytes().strip()
    new = os.urandom(24).hex().encode()
    steps = [("r1", new + b"\n" + old), ("s1", new + b"\n" + old), ("r1", new), ("s1", new)]
    try:
        for k, (node, content) in enumerate(steps):
            pair.secret_file(node).write_bytes(content + b"\n")
            _restart(getattr(pair, node))
            src, dst, info = _sync_small(pair, dms_app, store, f"rotate-{k}")
            assert info["state"] == "SUCCEEDED" and info["files_failed"] == 0, (k, info)
            assert_same_tree(src, dst)
        pair.secret_file("s1").write_bytes(os.urandom(24).hex().encode() + b"\n")  # shared by nobody
        _restart(pair.s1)
        src, dst, info = _sync_small(pair, dms_app, store, "rotate-wrong", links=True)
        assert info["state"] == "FAILED", info
        assert info["error"].startswith("the data-plane handshake was refused"), info["error"]
        # each name counted once: every file, and the hard link whose target failed; of all
        # the names that needed anything (files and links), so never "51 of 50"
        names = info["files_total"] + info["links_total"]
        assert info["links_total"] == 2 and info["files_done"] == 0, info
        assert info["files_failed"] == info["files_total"] + 1, info
        assert f"{info['files_failed']} of {names} file(s) failed" in info["error"], info
    finally:
        for node in ("r1", "s1"):
            pair.secret_file(node).write_bytes(old + b"\n")
            _restart(getattr(pair, node))
