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
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dms.client.submit import submit, wait
from dms.request import make_params
from tests.clusters import Deployment, multihost_deployment
from tests.conftest import unique_id
from tests.netns import counter_delta, netns_unavailable
from tests.trees import MIB, assert_same_tree, write_unique

_why = netns_unavailable()
pytestmark = pytest.mark.skipif(_why is not None, reason=_why or "")

SOURCE_NICS = ["a1/d0", "a1/d1", "a2/d0", "a2/d1"]
DESTINATION_NICS = ["b1/d0", "b1/d1"]
CONTROL_NICS = ["a1/c0", "a2/c0", "b1/c0", "redis/c0"]


MultiHost = Deployment


@pytest.fixture(scope="module")
def multihost(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("multihost")
    defaults = {"chunk_size": "64MiB", "parallelism": 8, "data_timeout": 10}
    with multihost_deployment(root, {"A": ["a1", "a2"], "B": ["b1"]}, defaults=defaults) as deployment:
        yield deployment


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
    from dms.state.nodes import Registry

    nodes = {n.node: n for n in Registry(multihost.store.r).live_nodes(fresh=True)}
    assert set(nodes) == {"a1", "a2", "b1"}
    assert [nic.address for nic in nodes["b1"].nics] == ["10.78.0.41", "10.78.0.42"]
    assert all(n.receiver for n in nodes.values())
    assert nodes["a1"].cluster == "A" and nodes["b1"].cluster == "B"


def _announced(mh: MultiHost) -> dict[str, set[str]]:
    from dms.state.nodes import Registry

    return {n.node: {nic.interface for nic in n.nics} for n in Registry(mh.store.r).live_nodes(fresh=True)}


def test_data_nics_going_down_mid_transfer_move_their_work_to_the_other_nics(multihost: MultiHost) -> None:
    """`ip link set d0 down` on source node a1 and `d1 down` on destination node b1 while
    units are in flight: the heartbeats stop announcing them, new units avoid them, units
    their queues still hold are sent from the node's other NIC, and a connection that
    stalled on a dead link is re-routed after data_timeout (10 s here). The request
    completes byte-exact; the NICs come back afterwards."""
    mh = multihost
    src, dst = mh.root / "a" / "nicdown", mh.root / "b" / "nicdown"
    bulk = _build_tree(src, big=6, big_size=128 * MIB, small=200)
    params = make_params(str(src), str(dst), request_id=unique_id("nicdown"), direction="A_TO_B", chunk_size="8MiB",
                         parallelism=8)  # fmt: skip
    submit(mh.app, mh.store, params)
    deadline = time.monotonic() + 120
    while mh.store.get(params.request_id)["bytes_done"] < bulk // 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mh.store.get(params.request_id)["state"] == "TRANSFERRING", "the transfer ended before a NIC went down"
    done_at_down = int(mh.store.get(params.request_id)["bytes_done"])
    try:
        mh.topo.set_link("a1", "d0", up=False)
        mh.topo.set_link("b1", "d1", up=False)
        before, down_at = mh.topo.counters(), time.monotonic()
        info = wait(mh.store, params.request_id, timeout=300)
        delta = counter_delta(before, mh.topo.counters())
        took = time.monotonic() - down_at
        print(f"{(bulk - done_at_down) / MIB:.0f} MiB left at the link-down; done {took:.1f} s later")
        assert info["state"] == "SUCCEEDED", (info, mh.store.errors(params.request_id, limit=5))
        assert_same_tree(src, dst)
        announced = _announced(mh)
        assert announced["a1"] == {"d1"} and announced["b1"] == {"d0"}, announced
        # the rest of the bytes went over the NICs still up, and a1 kept sending over d1
        assert delta["a1/d1"][1] > 0 and delta["b1/d0"][0] > (bulk - done_at_down) * 0.5, delta
        assert delta["a1/d0"][1] < MIB and delta["b1/d1"][0] < MIB, delta
    finally:
        mh.topo.set_link("a1", "d0", up=True)
        mh.topo.set_link("b1", "d1", up=True)
    deadline = time.monotonic() + 30
    while _announced(mh) != {"a1": {"d0", "d1"}, "a2": {"d0", "d1"}, "b1": {"d0", "d1"}}:
        assert time.monotonic() < deadline, _announced(mh)
        time.sleep(0.5)


def test_a_black_holed_data_path_is_left_within_data_timeout(multihost: MultiHost) -> None:
    """b1's d0 switch port is taken off the bridge while units are in flight to it: both ends
    stay up with carrier, nothing announces the NIC down, and what is sent to it vanishes
    without an error or a reset. The kernel alone would keep retransmitting for about 15
    minutes; the data plane's progress deadlines (TCP_USER_TIMEOUT, send and receive
    timeouts, all data_timeout: 10 s here) end each stuck connection, the failed path is
    marked down for the scheduler, and its units go to b1's d1. The request completes
    byte-exact, and the janitor never had to step in (stall_timeout is 120 s)."""
    mh = multihost
    src, dst = mh.root / "a" / "blackhole", mh.root / "b" / "blackhole"
    bulk = _build_tree(src, big=6, big_size=96 * MIB, small=100)
    params = make_params(str(src), str(dst), request_id=unique_id("blackhole"), direction="A_TO_B",
                         chunk_size="8MiB", parallelism=8)  # fmt: skip
    rid = params.request_id
    submit(mh.app, mh.store, params)
    deadline = time.monotonic() + 120
    while mh.store.get(rid)["bytes_done"] < bulk // 8 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mh.store.get(rid)["state"] == "TRANSFERRING", "the transfer ended before the path was cut"
    isolated_at = time.time()
    mh.topo.isolate("b1", "d0", True)
    try:
        info = wait(mh.store, rid, timeout=300)
    finally:
        mh.topo.isolate("b1", "d0", False)
    events = mh.store.events(rid)
    assert info["state"] == "SUCCEEDED", (info, mh.store.errors(rid, limit=5))
    assert_same_tree(src, dst)
    left = [e for e in events if e["event"] == "unit rerouted" and e["at"] >= isolated_at and "b1/d0" in e["error"]]
    assert left, [e for e in events if e["event"] != "unit done"]
    first = min(e["at"] for e in left) - isolated_at
    print(f"first unit off the black-holed path {first:.1f} s after it was cut ({len(left)} unit(s) left it)")
    assert first < 3 * 10, (first, left)  # data_timeout is 10 s; the kernel's own limit is ~900 s
    assert not [e for e in events if e["event"] == "unit re-dispatched"], "the janitor had to re-dispatch"


def test_a_nic_whose_policy_route_is_gone_is_announced_degraded_until_it_is_back(multihost: MultiHost) -> None:
    """a1's d1 stays up but loses its policy route (what a link flap does to a route added
    by hand): traffic from its address would leave through d0. Its node stops announcing
    it (no unit is routed over it) within a few heartbeats, and announces it again once the
    route is back."""
    from tests.netns import run

    mh = multihost
    h = mh.topo.host("a1")

    def wait_for(present: bool) -> None:
        deadline = time.monotonic() + 30
        while ("d1" in _announced(mh).get("a1", set())) != present and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ("d1" in _announced(mh).get("a1", set())) == present, _announced(mh)

    wait_for(True)
    # Without table 101 the main table decides, and which of its two connected routes comes
    # first depends on which link came up last: a host route to each peer through d0 makes
    # "another device" certain.
    peers = [mh.topo.host("b1").data_address(k) for k in range(2)]
    run("ip", "route", "flush", "table", "101", ns=h.ns)
    for peer in peers:
        run("ip", "route", "add", f"{peer}/32", "dev", "d0", ns=h.ns)
    try:
        wait_for(False)
        assert "d0" in _announced(mh)["a1"]
        assert "would leave through another device" in mh.workers["a1"].log()
    finally:
        for peer in peers:
            run("ip", "route", "del", f"{peer}/32", "dev", "d0", ns=h.ns)
        run("ip", "route", "replace", "10.78.0.0/24", "dev", "d1", "src", h.data_address(1), "table", "101", ns=h.ns)
    wait_for(True)
