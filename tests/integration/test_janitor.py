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


def test_a_forced_resume_gives_back_the_nic_load_of_the_units_the_old_run_routed(store: Any) -> None:
    """resume --force of a cross-cluster request still running (its workers gone) dropped the
    old run's routes without their load: the scheduler then saw those NICs busy for good."""
    from dms.client.submit import resume
    from dms.model import RequestState
    from dms.request import make_params

    registry = Registry(store.r)
    rid = unique_id("forced")
    params = make_params("/data/a", "/data/b", request_id=rid, source_cluster="fx", destination_cluster="fy")
    store.create(params)
    store.set_state(rid, RequestState.TRANSFERRING)
    src, dst = f"{unique_id('fa')}/eth1", f"{unique_id('fb')}/eth1"
    assert registry.assign(rid, 0, src, dst, 1000) and registry.assign(rid, 1, src, dst, 500)
    assert registry.nic_load()[src] == 1500

    class Sender:
        def send_task(self, *args: Any, **kwargs: Any) -> None:
            pass  # the plan message: no worker of these clusters runs here

    resume(Sender(), store, rid, force=True)
    load = registry.nic_load()
    assert load.get(src, 0) == 0 and load.get(dst, 0) == 0, load
    store.set_state(rid, RequestState.FAILED, error="ended by the test")
    store.r.hdel("dms:nicload", src, dst)


def test_a_late_copy_that_fails_to_connect_after_the_end_routes_nothing(store: Any, dms_app: Any) -> None:
    """A late copy of a unit whose connect failed 27 s after its request ended routed the unit
    again and logged "unit rerouted" into the ended request's log (an acceptance run)."""
    from dms.model import RequestState
    from dms.request import make_params
    from dms.state.nodes import NicEndpoint
    from dms.tasks.transfer import transfer

    rid = unique_id("late-connect")
    params = make_params("/data/a", "/data/b", request_id=rid, source_cluster="lx", destination_cluster="ly")
    store.create(params)
    store.set_state(rid, RequestState.SUCCEEDED)
    failed = NicEndpoint("ly1", "ly", "e0", "10.0.0.9", 7400, "rail0")
    transfer.reroute(store.params(rid), 0, [], failed=failed, error=TimeoutError(110, "connect: Connection timed out"))
    assert [e for e in store.events(rid) if e["event"] == "unit rerouted"] == []


def test_the_finalize_lock_is_taken_again_by_its_own_message(store: Any) -> None:
    """A finalize cancelled by a Redis restart left its lock for an hour, and its own message,
    put back at once, found the lock taken and did nothing: the request stayed FINALIZING
    (the chaos schedule). The same task id takes it again; another id still cannot."""
    rid = unique_id("lock")
    assert store.acquire_finalize_lock(rid, "task-1", 60)
    assert store.acquire_finalize_lock(rid, "task-1", 60)  # its message, back after its run was cancelled
    assert not store.acquire_finalize_lock(rid, "task-2", 60)  # a second finalize while one runs
    store.release_finalize_lock(rid)
    assert store.acquire_finalize_lock(rid, "task-2", 60)
    store.release_finalize_lock(rid)
