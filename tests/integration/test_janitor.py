"""The janitor's memory of silent nodes, against a real Redis."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from dms.state.nodes import DEAD_SINCE, NODES, NodeStatus, Registry
from dms.worker.janitor import FORGET_AFTER, sweep
from tests.conftest import unique_id


def test_a_node_that_beats_again_is_swept_afresh_when_it_falls_silent_again(store: Any) -> None:
    """A node silent long ago that came back and falls silent again must be swept for
    FORGET_AFTER from its new silence, not forgotten at once for the old one (its units
    would then never be routed again)."""
    registry = Registry(store.r)
    task = SimpleNamespace(registry=Registry(store.r), app=None)  # only its registry is used without requests
    node = unique_id("ghost")
    status = NodeStatus(node=node, cluster="X", hostname="h", pid=1, nics=(), receiver=False)
    try:
        registry.heartbeat(status, ttl=60)
        store.r.set(f"{DEAD_SINCE}{node}", time.time() - FORGET_AFTER - 100)  # silent long ago
        sweep(store, registry, task)  # it beats now: its old silence is forgotten
        assert not store.r.exists(f"{DEAD_SINCE}{node}")
        store.r.delete(f"dms:node:{node}")  # silent again (its heartbeat lapsed)
        sweep(store, registry, task)
        assert store.r.sismember(NODES, node), "forgotten at once for an old silence"
        assert store.r.exists(f"{DEAD_SINCE}{node}")  # swept, from now
    finally:
        store.r.srem(NODES, node)
        store.r.delete(f"{DEAD_SINCE}{node}", f"dms:node:{node}")
