"""Every scheduler policy through the same behaviour suite, against real Redis accounting.

The suite is parametrized over available_policies(), so a third-party policy
installed in the environment is checked by the same rules.
"""

from __future__ import annotations

import collections
import itertools
from pathlib import Path
from typing import Any

import pytest

from dms.config import DmsConfig
from dms.errors import ConfigError
from dms.request import make_params
from dms.route.placement import NoRoute, Placement
from dms.scheduling import (
    LeastLoaded,
    RoundRobin,
    SchedulerPolicy,
    UnitToRoute,
    available_policies,
    candidate_paths,
    get_policy,
)
from dms.state.nodes import NicEndpoint, NodeStatus, Registry
from tests.conftest import unique_id

POLICIES = sorted(available_policies())


def nics(node: str, cluster: str, count: int, network: str = "") -> tuple[NicEndpoint, ...]:
    return tuple(NicEndpoint(node, cluster, f"d{i}", f"10.0.{ord(node[-1]) % 200}.{i + 1}", 7400, network)
                 for i in range(count))  # fmt: skip


def status(node: str, cluster: str, count: int = 2, receiver: bool = True, network: str = "") -> NodeStatus:
    return NodeStatus(node, cluster, "host", 1, nics(node, cluster, count, network), receiver)


@pytest.fixture
def registry(store: Any) -> Registry:
    reg = Registry(store.r, cache_seconds=0)
    for name in store.r.smembers("dms:nodes"):
        store.r.delete(f"dms:node:{name}")
    store.r.delete("dms:nodes", "dms:nicload", "dms:pathsdown")
    return reg


def test_builtins_are_registered_as_entry_points() -> None:
    assert {"round_robin", "least_loaded"} <= set(POLICIES)
    assert isinstance(get_policy("round_robin"), RoundRobin)
    assert isinstance(get_policy("least_loaded"), LeastLoaded)
    with pytest.raises(ConfigError, match=r"unknown scheduler policy 'fastest'.*least_loaded"):
        get_policy("fastest")


@pytest.mark.parametrize("name", POLICIES)
def test_policy_always_returns_a_candidate(name: str) -> None:
    policy = get_policy(name)
    sources = [*nics("a1", "A", 2), *nics("a2", "A", 2)]
    paths = candidate_paths(sources, list(nics("b1", "B", 2)))
    for i in range(50):
        assert policy.choose(UnitToRoute("r", i, 1 << 20), paths, {}) in paths
    single = paths[:1]
    assert policy.choose(UnitToRoute("r", 7, 1), single, {"a1/d0": 10**12}) == single[0]


@pytest.mark.parametrize("name", POLICIES)
def test_policy_spreads_equal_units_evenly_over_every_nic(name: str, registry: Registry, store: Any) -> None:
    """40 equal units, 8 in flight at a time (a unit finishes as each new one starts):
    every source NIC and every destination NIC carries a fair share."""
    for node, cluster in (("a1", "A"), ("a2", "A"), ("b1", "B")):
        registry.heartbeat(status(node, cluster), ttl=30)
    placement = Placement(registry, DmsConfig(path="-"))
    params = make_params("/src", "/dst", request_id=unique_id("spread"), source_cluster="A",
                         destination_cluster="B", scheduler=name)  # fmt: skip
    src_bytes: collections.Counter[str] = collections.Counter()
    dst_bytes: collections.Counter[str] = collections.Counter()
    for i in range(40):
        route = placement.route(params, i, 64 << 20)
        assert route.destination is not None
        src_bytes[route.source.key] += 64 << 20
        dst_bytes[route.destination.key] += 64 << 20
        if i >= 8:
            registry.release(params.request_id, [i - 8])
    assert set(src_bytes) == {"a1/d0", "a1/d1", "a2/d0", "a2/d1"}
    assert set(dst_bytes) == {"b1/d0", "b1/d1"}
    for counter, n in ((src_bytes, 4), (dst_bytes, 2)):
        fair = 40 * (64 << 20) / n
        assert all(0.75 * fair <= v <= 1.25 * fair for v in counter.values()), counter
    registry.release_all(params.request_id)
    assert all(v == 0 for v in registry.nic_load().values())


@pytest.mark.parametrize("name", POLICIES)
def test_policy_never_routes_to_dead_nodes_or_stopped_receivers(name: str, registry: Registry) -> None:
    registry.heartbeat(status("a1", "A"), ttl=30)
    registry.heartbeat(status("b1", "B", receiver=False), ttl=30)  # alive, but its receiver is down
    registry.heartbeat(status("b2", "B"), ttl=30)
    registry.heartbeat(status("b3", "B"), ttl=0.05)  # lapses at once
    import time

    time.sleep(0.1)
    placement = Placement(registry, DmsConfig(path="-"))
    params = make_params("/s", "/d", request_id=unique_id("dead"), source_cluster="A", destination_cluster="B",
                         scheduler=name)  # fmt: skip
    seen = {placement.route(params, i, 1).destination.node for i in range(20)}  # type: ignore[union-attr]
    assert seen == {"b2"}
    registry.withdraw("b2")
    with pytest.raises(NoRoute, match="no live worker"):
        placement.route(params, 99, 1)


@pytest.mark.parametrize("name", POLICIES)
def test_policy_keeps_rails_apart_and_avoids_failed_endpoints(name: str, registry: Registry) -> None:
    registry.heartbeat(NodeStatus("a1", "A", "h", 1, (
        NicEndpoint("a1", "A", "ib0", "10.1.0.1", 7400, "rail0"),
        NicEndpoint("a1", "A", "ib1", "10.2.0.1", 7400, "rail1"),
    ), True), ttl=30)  # fmt: skip
    registry.heartbeat(NodeStatus("b1", "B", "h", 1, (
        NicEndpoint("b1", "B", "ib0", "10.1.0.9", 7400, "rail0"),
        NicEndpoint("b1", "B", "ib1", "10.2.0.9", 7400, "rail1"),
    ), True), ttl=30)  # fmt: skip
    placement = Placement(registry, DmsConfig(path="-"))
    params = make_params("/s", "/d", request_id=unique_id("rail"), source_cluster="A", destination_cluster="B",
                         scheduler=name)  # fmt: skip
    for i in range(12):
        route = placement.route(params, i, 1 << 20)
        assert route.destination is not None and route.source.network == route.destination.network
    for i in range(12, 20):
        route = placement.route(params, i, 1 << 20, exclude={"b1/ib0"})
        assert route.destination is not None and route.destination.key == "b1/ib1"


def test_same_cluster_routes_stay_on_one_node(registry: Registry) -> None:
    registry.heartbeat(status("a1", "A"), ttl=30)
    registry.heartbeat(status("a2", "A"), ttl=30)
    placement = Placement(registry, DmsConfig(path="-"))
    params = make_params("/s", "/d", request_id=unique_id("same"), source_cluster="A", destination_cluster="A")
    routes = [placement.route(params, i, 1) for i in range(8)]
    assert all(r.destination is None for r in routes)  # the local copier
    assert {r.source.node for r in routes} == {"a1", "a2"}


def test_a_third_party_policy_plugs_in(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented way: a SchedulerPolicy subclass registered under the entry-point group."""
    from importlib import metadata

    class FirstNicOnly(SchedulerPolicy):
        name = "first_nic_only"

        def choose(self, unit: UnitToRoute, paths: Any, load: Any) -> Any:
            return min(paths, key=lambda p: (p[0].key, p[1].key))

    ep = metadata.EntryPoint("first_nic_only", f"{__name__}:FirstNicOnly", "dms.scheduler_policies")
    real = metadata.entry_points

    def fake_entry_points(**kw: Any) -> Any:
        found = list(real(**kw))
        return [*found, ep] if kw.get("group") == "dms.scheduler_policies" else found

    monkeypatch.setattr("dms.route.policies.entry_points", fake_entry_points)  # where get_policy looks
    monkeypatch.setitem(globals(), "FirstNicOnly", FirstNicOnly)
    get_policy.cache_clear()
    try:
        registry.heartbeat(status("a1", "A"), ttl=30)
        registry.heartbeat(status("b1", "B"), ttl=30)
        params = make_params("/s", "/d", request_id=unique_id("plug"), source_cluster="A",
                             destination_cluster="B", scheduler="first_nic_only")  # fmt: skip
        placement = Placement(registry, DmsConfig(path="-"))
        keys = {(r.source.key, r.destination.key) for r in (placement.route(params, i, 1) for i in range(5))}  # type: ignore[union-attr]
        assert keys == {("a1/d0", "b1/d0")}
    finally:
        get_policy.cache_clear()


def test_candidate_paths_pair_only_matching_rails() -> None:
    a = [NicEndpoint("a", "A", "x", "1.1.1.1", 1, "r0"), NicEndpoint("a", "A", "y", "1.1.1.2", 1, "")]
    b = [NicEndpoint("b", "B", "x", "2.2.2.1", 1, "r0"), NicEndpoint("b", "B", "z", "2.2.2.2", 1, "r1")]
    pairs = {(s.interface, d.interface) for s, d in candidate_paths(a, b)}
    assert pairs == {("x", "x"), ("y", "x"), ("y", "z")}
    assert list(itertools.chain(candidate_paths([], b))) == []


def test_the_documented_policy_example_works() -> None:
    """docs/api.md's "Writing a scheduler policy" example, extracted and run."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    code = re.search(r"```python\n# mysite/dms_policies.py\n(.*?)```", text, re.S)
    assert code, "docs/api.md lost its scheduler policy example"
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "docs/api.md", "exec"), namespace)
    policy = namespace["PreferRail0"]()
    assert isinstance(policy, SchedulerPolicy) and policy.name == "prefer_rail0"
    a = [NicEndpoint("a1", "A", "ib0", "10.1.0.1", 1, "rail0"), NicEndpoint("a1", "A", "ib1", "10.2.0.1", 1, "rail1")]
    b = [NicEndpoint("b1", "B", "ib0", "10.1.0.2", 1, "rail0"), NicEndpoint("b1", "B", "ib1", "10.2.0.2", 1, "rail1")]
    paths = candidate_paths(a, b)
    big = policy.choose(UnitToRoute("r", 0, 64 << 20), paths, {"a1/ib0": 10**9, "b1/ib0": 10**9})
    assert big[0].network == "rail0"
    small = policy.choose(UnitToRoute("r", 1, 4096), paths, {"a1/ib0": 10**9, "b1/ib0": 10**9})
    assert small[0].network == "rail1" and small in paths


@pytest.mark.parametrize("name", POLICIES)
def test_a_path_whose_connection_just_failed_is_avoided_until_its_mark_lapses(name: str, registry: Registry) -> None:
    """A transfer whose connection failed marks its path down at once: no unit is routed over it
    while the mark lasts (the heartbeats may never show the fault); when every path is marked,
    all are tried again; the mark lapses by itself."""
    import time

    registry.heartbeat(status("a1", "A", count=1), ttl=30)
    registry.heartbeat(status("b1", "B", count=2), ttl=30)
    placement = Placement(registry, DmsConfig(path="-"))
    params = make_params("/s", "/d", request_id=unique_id("down"), source_cluster="A", destination_cluster="B",
                         scheduler=name)  # fmt: skip
    registry.mark_path_down("a1/d0", "b1/d0", seconds=0.5)
    seen = {placement.route(params, i, 1).destination.key for i in range(12)}  # type: ignore[union-attr]
    assert seen == {"b1/d1"}
    registry.mark_path_down("a1/d0", "b1/d1", seconds=0.5)
    seen = {placement.route(params, i, 1).destination.key for i in range(12)}  # type: ignore[union-attr]
    assert seen == {"b1/d0", "b1/d1"}  # all marked: none is left out
    time.sleep(0.6)
    assert registry.paths_down() == set()
    registry.release_all(params.request_id)


def test_no_load_is_added_for_a_done_unit_or_an_ended_request(registry: Registry, store: Any) -> None:
    """A route recorded after the unit was recorded (a duplicate, or the janitor racing the
    unit's own record) or after the request ended would add load nothing takes back: the
    record released the unit's load before, and finalize's release_all may have run."""
    from dms.state.requests import Keys

    rid = unique_id("late")
    keys = Keys(rid)
    try:
        store.r.setbit(keys.units_done, 3, 1)
        assert not registry.assign(rid, 3, "a1/d0", "b1/d0", 100)
        assert registry.assign(rid, 4, "a1/d0", "b1/d0", 100)
        store.r.hset(keys.req, "state", "SUCCEEDED")
        assert not registry.assign(rid, 5, "a1/d0", "b1/d0", 100)
        assert registry.nic_load() == {"a1/d0": 100, "b1/d0": 100}
        assert registry.routed_units(rid) == [4]
    finally:
        registry.release_all(rid)
        store.r.delete(keys.req, keys.units_done)


def test_a_nic_is_route_checked_only_against_the_peers_on_its_rail(tmp_path: Path) -> None:
    """Regression (acceptance on a two-rail topology with a default route): every data NIC was
    announced degraded, because its route check asked for peers on the other rail too, which
    the default route reaches. A NIC is checked against the peers placement may pair it with:
    the same rail label, or either side unlabelled."""
    from dms.config import load_config
    from dms.route.nics import peers_of

    path = tmp_path / "workers.yml"
    path.write_text(
        "clusters:\n"
        "  A:\n    nodes:\n"
        "      a1: {data: [{interface: d0, address: 10.1.0.1, network: rail0},\n"
        "                  {interface: d1, address: 10.2.0.1, network: rail1},\n"
        "                  {interface: d2, address: 10.3.0.1}], roots: [/a]}\n"
        "  B:\n    nodes:\n"
        "      b1: {data: [{interface: d0, address: 10.1.0.9, network: rail0}], roots: [/b]}\n"
        "      b2: {data: [{interface: d0, address: 10.2.0.9, network: rail1},\n"
        "                  {interface: d1, address: 10.3.0.9}], roots: [/b]}\n"
    )
    config = load_config(path)
    d0, d1, d2 = config.node("a1").data
    assert peers_of(d0, "A", config) == ["10.1.0.9", "10.3.0.9"]  # its rail, and the unlabelled one
    assert peers_of(d1, "A", config) == ["10.2.0.9", "10.3.0.9"]
    assert peers_of(d2, "A", config) == ["10.1.0.9", "10.2.0.9", "10.3.0.9"]  # unlabelled: every peer
    assert peers_of(config.node("b1").data[0], "B", config) == ["10.1.0.1", "10.3.0.1"]
