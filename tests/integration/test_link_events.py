"""A NIC going down or up reaches the scheduler at once, not at the node's next heartbeat.

Heartbeats are 60 s apart here, so only the node's link watcher (dms.worker.link_watch:
rtnetlink link and address events in the worker's own namespace) can announce a change
within the few seconds allowed. Both a source and a destination NIC, down then up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.clusters import Deployment, multihost_deployment
from tests.netns import netns_unavailable

_why = netns_unavailable()
pytestmark = pytest.mark.skipif(_why is not None, reason=_why or "")

INTERVAL = 60


@pytest.fixture(scope="module")
def slow_beats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("linkevents")
    defaults = {"heartbeat_interval": INTERVAL, "heartbeat_ttl": 3 * INTERVAL}
    with multihost_deployment(root, {"A": ["a1"], "B": ["b1"]}, defaults=defaults) as mh:
        yield mh


def _announced(mh: Deployment, node: str) -> set[str]:
    from dms.state.nodes import Registry

    status = next((n for n in Registry(mh.store.r).live_nodes(fresh=True) if n.node == node), None)
    return {nic.interface for nic in status.nics} if status else set()


def _until(mh: Deployment, node: str, want: set[str], within: float) -> float:
    start = time.monotonic()
    while _announced(mh, node) != want:
        assert time.monotonic() - start < within, (node, _announced(mh, node), want)
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.mark.parametrize("node,iface", [("a1", "d1"), ("b1", "d0")])
def test_a_nic_change_is_announced_at_once(slow_beats: Deployment, node: str, iface: str) -> None:
    mh = slow_beats
    both = {"d0", "d1"}
    _until(mh, node, both, within=30)  # the first beat
    mh.topo.set_link(node, iface, up=False)
    try:
        down = _until(mh, node, both - {iface}, within=5)
    finally:
        mh.topo.set_link(node, iface, up=True)
    up = _until(mh, node, both, within=5)
    print(f"{node}/{iface}: announced down {down:.2f} s and up again {up:.2f} s after the change "
          f"(heartbeats every {INTERVAL} s)")  # fmt: skip
