"""Cross-cluster syncs over a real multi-host network built from namespaces and veth links.

Topology (tests/netns.py): a redis host and three DMS nodes, each in its own
network namespace: a1 and a2 (cluster A, the source) and b1 (cluster B, the
destination). Each node has one control NIC (c0, 10.77.0.0/24, where Redis
is) and two data NICs (d0, d1) on one data subnet (10.78.0.0/24) with policy
routing per NIC. Every worker runs inside its own namespace and reaches Redis
only over the control network; this test process talks to the same Redis
through its Unix socket. Skipped, with the reason, where namespaces cannot be
made (not root).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from dms.client import submit, wait
from dms.model import make_params
from dms.processes import stop_process_group
from tests.clusters import NodeWorker, write_config, write_secret
from tests.conftest import unique_id
from tests.netns import Topology, counter_delta, netns_unavailable
from tests.trees import MIB, assert_same_tree, write_unique

_why = netns_unavailable()
pytestmark = pytest.mark.skipif(_why is not None, reason=_why or "")

SOURCE_NICS = ["a1/d0", "a1/d1", "a2/d0", "a2/d1"]
DESTINATION_NICS = ["b1/d0", "b1/d1"]
CONTROL_NICS = ["a1/c0", "a2/c0", "b1/c0", "redis/c0"]


@dataclass
class MultiHost:
    topo: Topology
    root: Path
    config: Path
    workers: dict[str, NodeWorker]
    store: Any
    app: Any


def _node(topo: Topology, name: str, root: Path, secret: Path) -> dict[str, Any]:
    h = topo.host(name)
    return {
        "control": {"interface": "c0", "address": h.control_address},
        "data": [{"interface": iface, "address": h.data_address(k)} for k, iface in enumerate(h.data_interfaces())],
        "port": 7400,
        "roots": [str(root)],
        "concurrency": 2,
        "secret_file": str(secret),
    }


@pytest.fixture(scope="module")
def multihost(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiHost]:
    root = tmp_path_factory.mktemp("multihost")
    (root / "a").mkdir()
    (root / "b").mkdir()
    topo = Topology.build(["a1", "a2", "b1"])
    redis_proc = None
    workers: dict[str, NodeWorker] = {}
    try:
        sock = root / "redis.sock"
        redis_proc = subprocess.Popen(
            ["ip", "netns", "exec", topo.host("redis").ns, "redis-server", "--bind", topo.redis_address,
             "--port", "6379", "--protected-mode", "no", "--unixsocket", str(sock), "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", str(root), "--logfile", str(root / "redis.log")],
            start_new_session=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(unix_socket_path=str(sock))
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except (redis.RedisError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        secret = write_secret(root / "secret")
        config = write_config(root / "workers.yml", {
            "A": {"nodes": {n: _node(topo, n, root / "a", secret) for n in ("a1", "a2")}},
            "B": {"nodes": {"b1": _node(topo, "b1", root / "b", secret)}},
        }, defaults={"chunk_size": "64MiB", "parallelism": 8})  # fmt: skip
        control_url = f"redis://{topo.redis_address}:6379/0"
        worker_env = {"DMS_BROKER_URL": control_url, "DMS_RESULT_BACKEND": control_url, "DMS_STATE_URL": control_url}
        for name in ("a1", "a2", "b1"):
            workers[name] = NodeWorker(name, config, worker_env, root / f"{name}.log", netns=topo.host(name).ns)
            workers[name].start()
        # this process: the same Redis through its Unix socket (it has no leg on the control network)
        os.environ["DMS_CONFIG"] = str(config)
        from celery import Celery

        from dms.state import RequestStore, connect

        app = Celery("dms-multihost-client", broker=f"redis+socket://{sock}?virtual_host=0")
        app.conf.update(task_serializer="json", accept_content=["json"], task_create_missing_queues=True)
        store = RequestStore(connect(f"unix://{sock}?db=0"))
        deadline = time.monotonic() + 30
        while len(store.r.keys("dms:node:*")) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        yield MultiHost(topo, root, config, workers, store, app)
    finally:
        for w in workers.values():
            w.stop()
        if redis_proc is not None:
            stop_process_group(redis_proc)
        topo.down()
        os.environ.pop("DMS_CONFIG", None)
        from dms.settings import _load_cached

        _load_cached.cache_clear()


def _build_tree(root: Path, big: int, big_size: int, small: int) -> int:
    root.mkdir(parents=True)
    for i in range(big):
        write_unique(root / f"big{i}.bin", big_size, 100 + i)
    for i in range(small):
        d = root / "small" / f"d{i % 30:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.dat").write_bytes(os.urandom(8192))
    return big * big_size + small * 8192


def _sync(mh: MultiHost, name: str, scheduler: str) -> tuple[int, dict[str, tuple[int, int]]]:
    src, dst = mh.root / "a" / name, mh.root / "b" / name
    params = make_params(str(src), str(dst), request_id=unique_id(name), direction="A_TO_B", chunk_size="64MiB",
                         parallelism=8, scheduler=scheduler)  # fmt: skip
    before = mh.topo.counters()
    submit(mh.app, mh.store, params)
    info = wait(mh.store, params.request_id, timeout=600)
    delta = counter_delta(before, mh.topo.counters())
    assert info["state"] == "SUCCEEDED", (info, mh.store.errors(params.request_id, limit=5))
    assert_same_tree(src, dst)
    return int(info["bytes_total"]), delta


def _assert_fair(delta: dict[str, tuple[int, int]], bulk: int, low: float, high: float) -> None:
    report = {k: (round(rx / MIB), round(tx / MIB)) for k, (rx, tx) in delta.items()}  # MiB, for the message
    print(f"bulk {bulk / MIB:.0f} MiB; per NIC rx/tx MiB: {report}")
    for nic in SOURCE_NICS:  # what each source NIC sent
        share = delta[nic][1] / (bulk / len(SOURCE_NICS))
        assert low <= share <= high, f"{nic} sent {share:.2f} of a fair share; rx/tx MiB: {report}"
    for nic in DESTINATION_NICS:  # what each destination NIC received
        share = delta[nic][0] / (bulk / len(DESTINATION_NICS))
        assert low <= share <= high, f"{nic} received {share:.2f} of a fair share; rx/tx MiB: {report}"
    for nic in CONTROL_NICS:  # Celery and Redis only: no bulk data
        assert sum(delta[nic]) < 0.01 * bulk, f"{nic} carried {sum(delta[nic])} bytes; rx/tx MiB: {report}"


def test_multi_gib_sync_uses_every_data_nic_and_no_control_nic(multihost: MultiHost) -> None:
    """4 x 512 MiB and 3,000 small files (2.0 GiB) from cluster A (2 hosts) to cluster B."""
    bulk = _build_tree(multihost.root / "a" / "big", big=4, big_size=512 * MIB, small=3000)
    total, delta = _sync(multihost, "big", "least_loaded")
    assert total == bulk
    _assert_fair(delta, bulk, 0.5, 1.5)


def test_round_robin_across_hosts(multihost: MultiHost) -> None:
    bulk = _build_tree(multihost.root / "a" / "rr", big=2, big_size=256 * MIB, small=500)
    _, delta = _sync(multihost, "rr", "round_robin")
    _assert_fair(delta, bulk, 0.5, 1.5)


def test_workers_announce_their_nics_over_the_control_network(multihost: MultiHost) -> None:
    from dms.registry import Registry

    nodes = {n.node: n for n in Registry(multihost.store.r).live_nodes(fresh=True)}
    assert set(nodes) == {"a1", "a2", "b1"}
    assert [nic.address for nic in nodes["b1"].nics] == ["10.78.0.41", "10.78.0.42"]
    assert all(n.receiver for n in nodes.values())
    assert nodes["a1"].cluster == "A" and nodes["b1"].cluster == "B"
