"""A plan message delivered twice at once: one run writes the plan, the other waits or is superseded.

Around a Redis restart, the consumer of the worker that is planning puts its unacked
messages back in their queue while the plan still runs, so a second run of the same plan
starts beside the first (the chaos test, seed 729899119: a request ended SUCCEEDED with
files missing, because the second run deleted walk chunks the first was about to read).
Here the first run is stopped mid-walk (SIGSTOP of its pool process), a second delivery
is published, and the first is continued: before its lease ran out (the second run
waits, then finds the request planned), and after (the second run takes over, the first
stops at its next write; since transfers of the first run changed the destination, the
second run starts over as a new incarnation). Either way: every file once, trees
identical, no key left.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from dms.client.submit import submit, wait
from dms.model import SyncParams
from dms.state.requests import Keys
from tests.conftest import unique_id
from tests.services import Worker
from tests.trees import assert_same_tree

LEASE = 4  # DMS_PLAN_LEASE_SECONDS of both workers


def _pool(worker: Worker) -> list[int]:
    assert worker.proc is not None
    pid = worker.proc.pid
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def _tree(src: Path) -> int:
    for t in range(16):
        d = src / f"top{t:02d}"
        d.mkdir(parents=True)
        for i in range(700):
            (d / f"f{i}").write_bytes(f"{t}/{i}".encode() * (i % 7))
    return 16 * 700


@pytest.mark.parametrize("stopped", [LEASE - 2, LEASE + 6], ids=["within-lease", "past-lease"])
def test_a_plan_run_twice_at_once_plans_every_file_once(
    tmp_path: Path, dms_app: Any, store: Any, redis_server: Any, stopped: int
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    files = _tree(src)
    rid = unique_id("twice")
    q = rid.replace("-", "_")
    params = SyncParams(rid, str(src), str(dst), control_queue=f"t.ctl.{q}", data_queue=f"t.data.{q}",
                        unit_max_files=100)  # fmt: skip
    env = {**redis_server.env(), "DMS_PLAN_LEASE_SECONDS": str(LEASE)}
    first = Worker(f"first-{q}", params.control_queue, env, tmp_path / "first.log", concurrency=1).start()
    second = Worker(f"second-{q}", f"{params.control_queue},{params.data_queue}", env, tmp_path / "second.log", 3)
    try:
        submit(dms_app, store, params)
        deadline = time.monotonic() + 60
        while int((store.get(rid) or {}).get("tasks_total", 0)) < 3:  # the first run is cutting units
            assert time.monotonic() < deadline, store.get(rid)
            time.sleep(0.005)
        pool = _pool(first)
        for pid in pool:
            os.kill(pid, signal.SIGSTOP)
        try:
            assert not (store.get(rid) or {}).get("planned"), "the tree was planned before the first run stopped"
            second.start()
            epoch = store.params(rid).epoch
            dms_app.send_task("dms.plan", args=(rid, epoch), queue=params.control_queue)
            time.sleep(stopped)
        finally:
            for pid in pool:
                os.kill(pid, signal.SIGCONT)
        info = wait(store, rid, timeout=180)
    finally:
        second.stop()
        first.stop()
    events = [e["event"] for e in store.events(rid)]
    assert info["state"] == "SUCCEEDED", (info, store.errors(rid), events)
    # a run that started over skips what the first run's transfers had published (quick check)
    assert info["files_total"] + info["files_uptodate"] == files, info
    assert info["files_done"] == info["files_total"] and info["files_failed"] == 0, info
    assert_same_tree(src, dst)
    assert "plan waits: another run of it holds the plan lease" in events, events
    if stopped < LEASE:  # the first run finished; the second found the request planned
        assert "plan started over" not in events and store.params(rid).epoch == epoch, events
    else:  # the second took over as a new incarnation; the first stopped at its next write
        assert "plan started over" in events and store.params(rid).epoch == epoch + 1, events
        assert "plan run superseded" in events, events
    assert not list(store.r.scan_iter(f"{Keys(rid).base}:walk:*")), "walk keys were left"
    assert not store.r.exists(Keys(rid).plan_lease)


def test_walk_writes_need_the_claim_a_lost_chunk_is_loud_and_the_lease_is_one_holders(store: Any) -> None:
    from dms.state.leases import PlanLease, PlanSuperseded
    from dms.state.walks import ClaimLost, WalkLost, WalkStore

    rid = unique_id("fence")
    walks = WalkStore(store, "run1")
    walks.set_groups(rid, [["top"]])
    assert walks.claim(rid, 0, "a") and not walks.claim(rid, 0, "b")
    walks.write_chunk(rid, 0, 0, [["X", "top/x"]], "a")
    with pytest.raises(ClaimLost):
        walks.write_chunk(rid, 0, 1, [["X", "top/y"]], "b")
    with pytest.raises(ClaimLost):
        walks.mark_done(rid, 0, 2, "b")
    walks.mark_done(rid, 0, 1, "a")
    assert walks.is_done(rid, 0) and walks.chunk_count(rid, 0) == 1
    assert WalkStore(store, "run2").group_dirs(rid, 0) is None and not WalkStore(store, "run2").is_done(rid, 0)
    walks.release_claim(rid, 0)
    with pytest.raises(ClaimLost):  # a claim that ran out writes nothing
        walks.write_chunk(rid, 0, 1, [["X", "top/z"]], "a")
    assert walks.take_chunk(rid, 0, 0) == [["X", "top/x"]]
    with pytest.raises(WalkLost):
        walks.take_chunk(rid, 0, 0)
    walks.drop(rid)

    store.create(SyncParams(rid, "/nonexistent-src", "/nonexistent-dst"))  # the lease counts its runs there
    first, second = PlanLease(store, rid), PlanLease(store, rid)
    assert first.acquire() and not second.acquire() and second.holder() == first.token
    first.renewed = 0.0
    first.check()  # renewed
    PlanLease.break_lease(store, rid)  # as if it ran out while nobody wanted it
    assert first.held() and first.holder() == first.token  # taken back: nobody came in between
    PlanLease.break_lease(store, rid)
    assert second.acquire()
    second.release()  # came and went: the lease is free, but it is not first's any more
    assert not first.held() and first.holder() is None
    with pytest.raises(PlanSuperseded):
        first.renewed = 0.0
        first.check()
    first.release()  # not the holder: changes nothing
    assert second.acquire() and second.holder() == second.token
    second.release()
    assert second.holder() is None


def test_a_task_of_an_older_incarnation_records_and_publishes_nothing(store: Any) -> None:
    """After a resume or a plan that started over, unit numbers and file ids name other work:
    a transfer of the old epoch that passed its own check records nothing, marks nothing
    published, and is told the request is not its own (so it advances no lane)."""
    import dataclasses

    from dms.model import RecordedPiece

    rid = unique_id("epochs")
    params = SyncParams(rid, "/nonexistent-src", "/nonexistent-dst")
    store.create(params)
    store.mark_planned(rid, tasks_total=3)
    assert store.plan_epochs(rid) == (params.epoch, params.epoch)
    newer = dataclasses.replace(params, epoch=params.epoch + 1)
    store.begin_epoch(rid, newer)
    assert store.plan_epochs(rid) == (params.epoch, newer.epoch)  # its plan messages still count
    late = store.record_unit(rid, 0, [RecordedPiece(0, 0, 10, "a" * 32)], [], epoch=params.epoch)
    assert late.ended and not late.first and not store.unit_done(rid, 0)
    assert store.mark_published(rid, [0, 1], epoch=params.epoch) == 0
    now = store.record_unit(rid, 0, [RecordedPiece(0, 0, 10, "a" * 32)], [], epoch=newer.epoch)
    assert now.first and not now.ended and store.unit_done(rid, 0)
    assert store.mark_published(rid, [0], epoch=newer.epoch) == 1
    store.reset_for_resume(rid, dataclasses.replace(params, epoch=newer.epoch + 5))  # a user's resume
    assert store.plan_epochs(rid) == (newer.epoch + 5, newer.epoch + 5)


def test_a_task_of_the_old_incarnation_cannot_mark_a_unit_of_the_new_one_sent(store: Any) -> None:
    """Regression (seen as a request TRANSFERRING for good after a Redis restart): a transfer
    of the old epoch recorded its unit, published the next unit of its lane, and marked it
    sent just after the plan started over. The bit landed in the new incarnation's bitmap,
    the new lane never published that unit, and its old-epoch message ran as stale. A task
    of another incarnation marks nothing sent, neither a unit nor finalize."""
    import dataclasses

    rid = unique_id("sent")
    params = SyncParams(rid, "/nonexistent-src", "/nonexistent-dst")
    store.create(params)
    store.mark_planned(rid, tasks_total=8)
    assert store.mark_dispatched(rid, 4, epoch=params.epoch) and store.was_dispatched(rid, 4)
    newer = dataclasses.replace(params, epoch=params.epoch + 1)
    store.begin_epoch(rid, newer)
    store.restart_plan(rid, newer)
    assert not store.was_dispatched(rid, 4)  # the new incarnation starts with no unit sent
    assert not store.mark_dispatched(rid, 5, epoch=params.epoch)  # the old lane's next unit
    assert not store.was_dispatched(rid, 5)
    assert not store.mark_finalize_sent(rid, epoch=params.epoch)
    assert store.get(rid)["finalize_sent"] is False
    assert store.mark_dispatched(rid, 5, epoch=newer.epoch) and store.was_dispatched(rid, 5)
    assert store.mark_finalize_sent(rid, epoch=newer.epoch) and store.get(rid)["finalize_sent"] is True
    assert not store.mark_dispatched(unique_id("missing"), 1)  # no request: nothing is left behind
