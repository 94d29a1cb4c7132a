"""End-to-end syncs through real Celery workers and a real redis-server."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from dms.client.submit import submit, wait
from dms.errors import RequestExists
from dms.model import RequestState, SyncParams
from dms.request import make_params
from dms.state.requests import Keys
from dms.transfer.unit import copy_unit
from tests.conftest import unique_id, wait_for_state
from tests.pagecache import cached_bytes, make_cold
from tests.trees import MIB, assert_same_tree, build_edge_tree

pytestmark = pytest.mark.usefixtures("worker")


def staging_leftovers(root: Path) -> list[str]:
    return [os.path.join(d, n) for d, _, names in os.walk(root) for n in names if n.endswith(".partial")]


def test_edge_tree_is_copied_exactly(tmp_path: Path, dms_app: Any, store: Any) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    build_edge_tree(src, chunk_size=MIB, small_files=2500)
    params = SyncParams(unique_id("edge"), str(src), str(dst), parallelism=3, chunk_size=MIB, unit_bytes=MIB,
                        unit_max_files=400)  # fmt: skip
    submit(dms_app, store, params)
    info = wait(store, params.request_id, poll=0.1, timeout=300)
    assert info["state"] == "SUCCEEDED", info
    assert info["files_done"] == info["files_total"] == 2506
    assert info["bytes_done"] == info["bytes_total"] == sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    assert info["tasks_done"] == info["tasks_total"] > 3
    assert_same_tree(src, dst)
    assert staging_leftovers(dst) == []
    # the transient plan keys are gone; the record stays, with a retention TTL
    assert not store.r.exists(Keys(params.request_id).unit(0))
    assert store.r.ttl(Keys(params.request_id).req) > 0


def test_file_vanishing_between_plan_and_transfer_fails_only_that_file(
    tmp_path: Path, store: Any, start_worker: Any, held_request: Any
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    for i in range(30):
        (src / "d" / f"f{i}").write_bytes(os.urandom(1000 + i))
    params, _ = held_request(src, dst, "vanish", parallelism=2, unit_max_files=7)
    rid = params.request_id
    (src / "d" / "f13").unlink()
    start_worker(params.data_queue)
    info = wait(store, rid, poll=0.1, timeout=120)
    assert info["state"] == "FAILED" and info["end_reason"] == "vanished", info  # exit 24, as rsync's
    assert info["files_failed"] == 1 and info["files_done"] == 29
    assert "d/f13" in info["error"]
    errors = store.errors(rid)
    assert [e["path"] for e in errors] == ["d/f13"] and errors[0]["errno"] == 2
    assert not (dst / "d" / "f13").exists()
    for i in range(30):
        if i != 13:
            assert (dst / "d" / f"f{i}").read_bytes() == (src / "d" / f"f{i}").read_bytes()
    assert staging_leftovers(dst) == []


def test_running_a_transfer_twice_counts_once(
    tmp_path: Path, dms_app: Any, store: Any, start_worker: Any, held_request: Any
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    build_edge_tree(src, chunk_size=256 * 1024, small_files=50)
    params, _ = held_request(src, dst, "redeliver", parallelism=1, chunk_size=256 * 1024, unit_bytes=256 * 1024)
    rid = params.request_id
    # unit 0 is queued; queue it again, as a broker redelivery would
    dms_app.send_task("dms.transfer", args=(rid, 0, store.params(rid).epoch), queue=params.data_queue)
    data_worker = start_worker(params.data_queue, concurrency=1)
    info = wait(store, rid, poll=0.1, timeout=120)
    assert info["state"] == "SUCCEEDED", info
    log = data_worker.log()
    # both messages ran: the first copied, the duplicate found the unit done and only advanced its lane
    assert log.count("'unit': 0, 'status': 'done'") == 1 and log.count("'unit': 0, 'status': 'done already'") == 1
    assert info["tasks_done"] == info["tasks_total"]
    assert info["bytes_done"] == info["bytes_total"]
    assert info["files_done"] == info["files_total"]
    assert_same_tree(src, dst)


def test_empty_source_succeeds_with_zero_tasks(tmp_path: Path, dms_app: Any, store: Any) -> None:
    (tmp_path / "src").mkdir()
    params = SyncParams(unique_id("empty"), str(tmp_path / "src"), str(tmp_path / "dst"))
    submit(dms_app, store, params)
    info = wait(store, params.request_id, poll=0.1, timeout=60)
    assert info["state"] == "SUCCEEDED" and info["tasks_total"] == 0 and (tmp_path / "dst").is_dir()


def test_request_ids_are_unique_and_requests_isolated(tmp_path: Path, dms_app: Any, store: Any) -> None:
    (tmp_path / "s1").mkdir()
    (tmp_path / "s2").mkdir()
    (tmp_path / "s1" / "one").write_text("1")
    (tmp_path / "s2" / "two").write_text("2")
    rid = unique_id("dup")
    submit(dms_app, store, SyncParams(rid, str(tmp_path / "s1"), str(tmp_path / "d1")))
    with pytest.raises(RequestExists):
        submit(dms_app, store, SyncParams(rid, str(tmp_path / "s2"), str(tmp_path / "d2")))
    other = SyncParams(unique_id("other"), str(tmp_path / "s2"), str(tmp_path / "d2"))
    submit(dms_app, store, other)
    assert wait(store, rid, timeout=60)["state"] == "SUCCEEDED"
    assert wait(store, other.request_id, timeout=60)["state"] == "SUCCEEDED"
    assert os.listdir(tmp_path / "d1") == ["one"] and os.listdir(tmp_path / "d2") == ["two"]


def test_source_removed_after_submit_fails_at_planning(tmp_path: Path, dms_app: Any, store: Any) -> None:
    src = tmp_path / "src"
    src.mkdir()
    params = SyncParams(unique_id("gone"), str(src), str(tmp_path / "dst"), control_queue="t.nobody")
    submit(dms_app, store, params)  # queued where no worker listens; then re-route by hand
    src.rmdir()
    dms_app.send_task("dms.plan", args=(params.request_id, store.params(params.request_id).epoch), queue="dms.control")
    info = wait(store, params.request_id, poll=0.1, timeout=60)
    assert info["state"] == "FAILED" and "does not exist" in info["error"] and "source" in info["error"]


def test_a_chained_task_receives_the_summary_and_is_not_copied_into_transfers(
    tmp_path: Path, dms_app: Any, store: Any, start_worker: Any
) -> None:
    from celery import chain

    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}").write_bytes(os.urandom(100))
    rid = unique_id("chain")
    params = SyncParams(rid, str(src), str(tmp_path / "dst"), unit_max_files=1, data_queue=f"t.data.{rid}")
    store.create(params)
    big_argument = "x" * 20000  # would bloat every transfer message if the chain were embedded
    workflow = chain(
        dms_app.signature("dms.plan", args=(params.request_id,), queue="dms.control"),
        dms_app.signature("celery.accumulate", args=(big_argument,), queue="dms.control", immutable=False),
    )
    result = workflow.apply_async()
    wait_for_state(store, rid, {"TRANSFERRING"})
    queued = store.r.lrange(params.data_queue, 0, -1)
    assert len(queued) == 4  # parallelism lanes
    assert max(len(m) for m in queued) < 4096  # the 20 KB chain argument is not in there
    start_worker(params.data_queue)
    summary_and_arg = result.get(timeout=60)
    summary = summary_and_arg[0]
    assert summary["request_id"] == params.request_id and summary["state"] == "SUCCEEDED"
    assert summary["files_done"] == 5 and summary_and_arg[1] == big_argument


def test_inflight_progress_is_overwritten_and_cleared_when_recorded(store: Any) -> None:
    from dms.state.requests import RequestStore

    rid = unique_id("inflight")
    store.create(SyncParams(rid, "/nonexistent-src", "/nonexistent-dst"))
    assert isinstance(store, RequestStore)
    store.report_inflight(rid, 3, 100)
    store.report_inflight(rid, 3, 250)  # a later slice of the same unit: overwritten, not added
    store.report_inflight(rid, 4, 50)
    assert store.get(rid)["bytes_inflight"] == 300
    store.record_unit(rid, 3, [], [])
    assert store.get(rid)["bytes_inflight"] == 50


def test_cancelled_request_publishes_nothing_and_leaves_no_staging(
    tmp_path: Path, dms_app: Any, store: Any, start_worker: Any, held_request: Any
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _small_files(src, 40, 2000)
    params, _ = held_request(src, dst, "cancel", parallelism=2, unit_max_files=5)
    rid = params.request_id
    # unit 0 copies before the cancel, exactly as its transfer task would: staging files now exist
    copy_unit(params, store.load_unit(rid, 0))
    assert len(staging_leftovers(dst)) == 5
    other = SyncParams(unique_id("bystander"), str(src), str(tmp_path / "other"))
    submit(dms_app, store, other)  # runs on the shared worker meanwhile
    _cancel_and_drain(store, start_worker, params)
    assert wait(store, other.request_id, timeout=120)["state"] == "SUCCEEDED"
    assert sorted(os.listdir(tmp_path / "other")) == sorted(os.listdir(src))


def test_cancelling_a_request_of_many_units_runs_only_the_units_already_published(
    tmp_path: Path, store: Any, start_worker: Any, held_request: Any
) -> None:
    """A cancel ends a request after the units in flight, not after one empty task per unit
    left in its lanes (at 100,000 units that took hours): 1,000 units, 2 lanes, 2 units run."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    _small_files(src, 1000, 100)
    params, _ = held_request(src, dst, "cancel-many", parallelism=2, unit_max_files=1)  # planned when it returns
    assert int(store.get(params.request_id)["tasks_total"]) == 1000
    info = _cancel_and_drain(store, start_worker, params)
    assert int(info["tasks_done"]) <= params.parallelism, info["tasks_done"]


def _small_files(src: Path, count: int, size: int) -> None:
    src.mkdir()
    for i in range(count):
        (src / f"f{i:04}").write_bytes(os.urandom(size))


def _cancel_and_drain(store: Any, start_worker: Any, params: SyncParams) -> dict[str, Any]:
    """Cancel a held request, let its transfers run, and check it ended CANCELLED with no
    published file and no staging file at the destination."""
    store.request_cancel(params.request_id)
    start_worker(params.data_queue, concurrency=1)
    info = wait(store, params.request_id, poll=0.1, timeout=120)
    assert info["state"] == "CANCELLED", info
    assert [p for p in Path(params.destination).rglob("*") if p.is_file()] == []
    return dict(info)


def test_finalize_rerun_after_renames_counts_renamed_files_and_catches_later_damage(
    tmp_path: Path, store: Any, start_worker: Any, held_request: Any
) -> None:
    from dms.fs.paths import staging_path

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(10):
        (src / f"f{i}").write_bytes(os.urandom(5000 + i))
    params, planner = held_request(src, dst, "rerun", chunk_size=4096, unit_bytes=4096)  # 2 chunks: finalize publishes
    rid = params.request_id
    planner.stop()  # warm shutdown: dms.plan finishes publishing its lanes first
    start_worker(params.data_queue)
    while not store.get(rid)["finalize_sent"]:
        wait_for_state(store, rid, {"TRANSFERRING"})
    # an earlier finalize renamed f0..f4 into place, then died before marking them published
    for i in range(5):
        os.rename(staging_path(str(dst / f"f{i}"), rid), dst / f"f{i}")
    (dst / "f4").write_bytes(b"changed after it was published")
    start_worker(params.control_queue)
    info = wait(store, rid, poll=0.1, timeout=120)
    assert info["state"] == "FAILED" and info["files_done"] == 9 and info["files_failed"] == 1
    assert [e["path"] for e in store.errors(rid)] == ["f4"] and "verification failed" in store.errors(rid)[0]["error"]
    for i in range(4):
        assert (dst / f"f{i}").read_bytes() == (src / f"f{i}").read_bytes()
    assert staging_leftovers(dst) == []


def test_chunks_of_large_files_are_dealt_out_across_files(
    tmp_path: Path, dms_app: Any, store: Any, held_request: Any, start_worker: Any
) -> None:
    """Transfers running at once must not all write into one file (they would queue on its
    inode lock): the planner deals the chunks of cut files round-robin (dms.plan.order)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for name in ("a", "b", "c"):
        (src / name).write_bytes(os.urandom(4 * 4096))  # 4 chunks each
    (src / "small").write_bytes(b"whole")
    params, _ = held_request(src, dst, "order", chunk_size=4096, unit_bytes=4096, parallelism=3)
    rid = params.request_id
    deadline = time.monotonic() + 60
    while not store.get(rid).get("planned") and time.monotonic() < deadline:
        time.sleep(0.05)
    total = store.get(rid)["tasks_total"]
    order = [[(p.file.relpath, p.offset) for p in store.load_unit(rid, i)] for i in range(total)]
    cut = [unit[0] for unit in order if unit[0][0] != "small"]
    assert [name for name, _ in cut] == ["a", "b", "c"] * 4, order
    for name in ("a", "b", "c"):  # each file's chunks still go in file order
        assert [off for n, off in cut if n == name] == [0, 4096, 8192, 12288]
    assert [("small", 0)] in order
    start_worker(params.data_queue)
    assert wait(store, rid, poll=0.1, timeout=120)["state"] == "SUCCEEDED"
    assert_same_tree(src, dst)


def test_a_transfer_for_an_unknown_or_ended_request_does_nothing(dms_app: Any, store: Any, worker: Any) -> None:
    import time

    rid = unique_id("late")  # never created, as if its record had expired
    dms_app.send_task("dms.transfer", args=(rid, 0), queue="dms.data")
    dms_app.send_task("dms.finalize", args=(rid,), queue="dms.control")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and worker.log().count(rid) < 2:  # the two results
        time.sleep(0.05)
    lines = [line for line in worker.log().splitlines() if rid in line and "succeeded" in line]
    assert len(lines) == 2, worker.log()[-3000:]
    assert any("'status': 'stale'" in line for line in lines)
    assert any("unknown or expired request" in line for line in lines)
    assert store.get(rid) is None  # nothing was created for it


def test_resync_skips_what_is_up_to_date_and_copies_what_changed(tmp_path: Path, dms_app: Any, store: Any) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    build_edge_tree(src, chunk_size=MIB, small_files=200)
    total_files = sum(1 for p in src.rglob("*") if p.is_file())

    def run(**fields: Any) -> dict[str, Any]:
        params = SyncParams(unique_id("resync"), str(src), str(dst), chunk_size=MIB, unit_bytes=MIB, **fields)
        submit(dms_app, store, params)
        info = wait(store, params.request_id, poll=0.1, timeout=120)
        assert info["state"] == "SUCCEEDED", info
        return info  # type: ignore[no-any-return]

    run()
    inodes = {p: p.stat().st_ino for p in dst.rglob("*") if p.is_file()}
    dir_ctimes = {p: p.stat().st_ctime_ns for p in [dst, *dst.rglob("*")] if p.is_dir() and not p.is_symlink()}
    again = run()  # nothing changed: nothing moves, nothing is replaced
    assert again["files_uptodate"] == total_files and again["files_total"] == 0
    assert again["tasks_total"] == 0 and again["bytes_done"] == 0
    assert {p: p.stat().st_ino for p in dst.rglob("*") if p.is_file()} == inodes
    # nor is any directory touched (no chmod/utime that changes nothing but the ctime)
    assert {p: p.stat().st_ctime_ns for p in dir_ctimes} == dir_ctimes
    assert_same_tree(src, dst)

    (src / "a" / "chunk plus one").write_bytes(os.urandom(MIB + 1))  # new content and mtime
    os.chmod(src / "zero", 0o604)  # only the mode changed
    changed = run()
    assert changed["files_total"] == 2 and changed["files_uptodate"] == total_files - 2
    assert changed["bytes_done"] == MIB + 1
    assert_same_tree(src, dst)

    forced = run(ignore_times=True)
    assert forced["files_total"] == total_files and forced["files_uptodate"] == 0
    assert_same_tree(src, dst)


def test_transfers_start_while_the_walk_goes_on(tmp_path: Path, dms_app: Any, store: Any, worker: Any) -> None:
    """Units are dispatched as the planner writes them, not after the walk: for a 30,000-file
    tree (units of 200 files, so 150 of them) at least the first lane positions start while
    the planner is still walking (counted by the planner itself: no timing involved)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    for i in range(30_000):
        d = src / f"d{i // 500:03d}"
        if i % 500 == 0:
            d.mkdir(parents=True)
        (d / f"f{i}").touch()
    rid = unique_id("stream")
    params = SyncParams(rid, str(src), str(dst), unit_max_files=200)
    submit(dms_app, store, params)
    info = wait(store, rid, timeout=300)
    assert info["state"] == "SUCCEEDED" and info["files_done"] == 30_000 and info["tasks_total"] == 150
    planned = next(e for e in store.events(rid) if e["event"] == "planned")
    assert planned["started_during_walk"] >= params.parallelism


def test_the_walk_fans_out_over_subtrees(tmp_path: Path, dms_app: Any, store: Any, start_worker: Any) -> None:
    """dms.walk tasks walk top-level subtrees in parallel with the planner; the plan is
    the same as a serial walk's (every file once, hard links across subtrees linked)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    for t in range(12):
        for i in range(300):
            d = src / f"top{t:02d}" / f"sub{i % 3}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i}").write_bytes(os.urandom(i % 50))
    os.link(src / "top00" / "sub0" / "f0", src / "top11" / "sub0" / "same-inode")
    (src / "root-file").write_text("at the top")
    rid = unique_id("fanout")
    q = rid.replace("-", "_")
    params = SyncParams(rid, str(src), str(dst), control_queue=f"t.ctl.{q}", data_queue=f"t.data.{q}")
    start_worker(f"{params.control_queue},{params.data_queue}", concurrency=3)
    submit(dms_app, store, params)
    info = wait(store, rid, timeout=300)
    assert info["state"] == "SUCCEEDED" and info["files_total"] == 12 * 300 + 1 and info["links_total"] == 1
    walked = [e for e in store.events(rid) if e["event"] == "subtrees walked"]
    assert walked, "no dms.walk task walked a subtree"
    assert {e["first"] for e in walked} <= {f"top{t:02d}" for t in range(1, 12)}
    for t in range(12):
        for i in range(0, 300, 37):
            rel = Path(f"top{t:02d}") / f"sub{i % 3}" / f"f{i}"
            assert (dst / rel).read_bytes() == (src / rel).read_bytes()
    assert os.stat(dst / "top00" / "sub0" / "f0").st_ino == os.stat(dst / "top11" / "sub0" / "same-inode").st_ino
    assert not list(store.r.scan_iter(f"dms:req:{rid}:walk:*"))  # the walk's keys are gone


def test_nothing_is_recorded_into_a_request_that_has_ended(store: Any) -> None:
    """A task that passed its own liveness check just before its request ended (a hung node
    waking up) records nothing: no digest, no bytes, no unit, no published file."""
    from dms.model import RecordedPiece, RequestState

    rid = unique_id("ended")
    store.create(SyncParams(rid, "/nonexistent-src", "/nonexistent-dst"))
    store.mark_planned(rid, tasks_total=2)
    assert store.record_unit(rid, 0, [RecordedPiece(0, 0, 10, "a" * 32)], []).first
    assert store.mark_published(rid, [0]) == 1
    store.set_state(rid, RequestState.SUCCEEDED)
    before = store.get(rid)
    late = store.record_unit(rid, 1, [RecordedPiece(1, 0, 20, "b" * 32)], [])
    assert not late.first and late.tasks_done == 1
    assert store.mark_published(rid, [1]) == 0
    after = store.get(rid)
    for key in ("bytes_done", "tasks_done", "files_done", "files_failed"):
        assert after[key] == before[key], key
    assert not store.unit_done(rid, 1)


def test_a_request_lost_by_redis_takes_no_late_writes_and_its_id_starts_clean(store: Any) -> None:
    """Redis lost its data while a task ran: the task's late record and publish marks write
    nothing into the missing request, and if keys of the id were left anyway (an older DMS,
    a late inflight report), a new request under the same id does not inherit them: no unit
    counts as done, no file as published, no bytes as moved."""
    from dms.model import RecordedPiece

    rid = unique_id("lost")
    late = store.record_unit(rid, 0, [RecordedPiece(0, 0, 10, "a" * 32)], [])
    assert not late.first and store.mark_published(rid, [0]) == 0
    assert not store.r.exists(Keys(rid).req) and not store.unit_done(rid, 0)
    keys = Keys(rid)  # leftovers as a task of a lost incarnation could leave them
    assert not store.mark_dispatched(rid, 5)  # no hash (Redis came back empty): nothing is marked
    store.create(SyncParams(rid, "/nonexistent-src", "/nonexistent-dst"))
    assert not store.was_dispatched(rid, 5)
    store.r.delete(keys.req)
    store.report_inflight(rid, 2, 100)
    store.r.setbit(keys.units_done, 1, 1)
    store.r.setbit(keys.dispatched, 3, 1)
    store.r.hset(keys.req, mapping={"tasks_done": 1, "bytes_done": 10})
    store.r.hset(keys.digests(0), "0:0", "10:" + "a" * 32)
    store.create(SyncParams(rid, "/nonexistent-src", "/nonexistent-dst"))
    info = store.get(rid)
    assert info["state"] == "PENDING" and info["tasks_done"] == 0 and info["bytes_done"] == 0
    assert info["bytes_inflight"] == 0
    assert not store.unit_done(rid, 1) and not store.was_dispatched(rid, 3)
    assert not store.r.exists(keys.digests(0))


def test_a_resumed_plan_that_finishes_after_its_units_still_sends_finalize(store: Any) -> None:
    """Regression: after a resume, finalize_sent is stored as "0"; the planner read it as true
    when every unit had finished before the plan was marked, and finalize was never sent
    (seen in CI as a resumed request stuck in TRANSFERRING)."""
    import dataclasses

    params = SyncParams(unique_id("flags"), "/nonexistent/src", "/nonexistent/dst")
    store.create(params)
    store.mark_finalize_sent(params.request_id)  # the first incarnation finalized
    store.reset_for_resume(params.request_id, dataclasses.replace(params, epoch=params.epoch + 1))
    progress = store.mark_planned(params.request_id, tasks_total=0)
    assert progress.all_done and not progress.finalize_sent


def test_the_planner_makes_the_directories_before_any_transfer_runs(
    tmp_path: Path, dms_app: Any, store: Any, start_worker: Any, held_request: Any
) -> None:
    """Decision 0016: the destination's directories exist once planning is done, while every
    transfer still waits in its queue; not one file is there yet. A dry run makes nothing."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    for rel in ("a/b/c", "a/empty", "d"):
        (src / rel).mkdir(parents=True)
    for rel in ("a/b/c/f", "a/g", "d/h"):
        (src / rel).write_bytes(b"x" * 100)
    params, _ = held_request(src, dst, "skeleton")
    deadline = time.monotonic() + 30
    while not store.get(params.request_id).get("planned") and time.monotonic() < deadline:
        time.sleep(0.02)
    made = sorted(str(p.relative_to(dst)) for p in dst.rglob("*"))
    assert made == ["a", "a/b", "a/b/c", "a/empty", "d"]
    rid = unique_id("skeleton-dry")
    q = rid.replace("-", "_")
    dry = SyncParams(rid, str(src), str(tmp_path / "dry"), control_queue=f"t.ctl.{q}", data_queue=f"t.data.{q}",
                     dry_run=True)  # fmt: skip
    start_worker(dry.control_queue)
    submit(dms_app, store, dry)
    assert wait(store, rid, timeout=60)["state"] == "SUCCEEDED"
    assert not (tmp_path / "dry").exists() or list((tmp_path / "dry").iterdir()) == []


def test_a_sync_leaves_the_source_page_cache_as_it_found_it(tmp_path: Path, dms_app: Any, store: Any) -> None:
    """Source pages the copy read in are dropped; a source someone had cached stays cached (0021).
    One unit at a time, and chunks long enough that the kernel's read-ahead past one chunk's end
    stays out of the next one's last quarter (decision 0021): then every chunk is dropped."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for name, size in (("cold", 3 * MIB // 2), ("warm", 3 * MIB + 5), ("cold-chunked", 64 * MIB)):
        (src / name).write_bytes(os.urandom(size))
    if not all(make_cold(src / name) for name in ("cold", "warm", "cold-chunked")):
        pytest.skip(f"{tmp_path} keeps files in the page cache (tmpfs?)")
    (src / "warm").read_bytes()
    assert cached_bytes(src / "warm") > 3 * MIB
    params = SyncParams(unique_id("cache"), str(src), str(dst), chunk_size=32 * MIB, parallelism=1)
    submit(dms_app, store, params)
    info = wait(store, params.request_id, poll=0.1, timeout=120)
    assert info["state"] == "SUCCEEDED", info
    assert cached_bytes(src / "cold") == 0
    assert cached_bytes(src / "cold-chunked") == 0
    assert cached_bytes(src / "warm") > 3 * MIB
    assert_same_tree(src, dst)  # reads the source: last


def test_listing_by_state_filters_before_it_limits(store: Any) -> None:
    """`list --state FAILED --limit 3` is the 3 newest FAILED requests, even when 600 newer
    requests in other states come first in the index (more than one page of it)."""
    from dms.model import RequestState
    from dms.state.requests import REQUESTS_INDEX

    tag = unique_id("listing")
    made = []
    try:
        for k in range(605):
            rid = f"{tag}-{k:03d}"
            store.create(SyncParams(rid, "/nonexistent-src", "/nonexistent-dst"))
            made.append(rid)
            state = RequestState.FAILED if k < 4 else RequestState.SUCCEEDED
            store.set_state(rid, state, **({"error": "planning failed: test"} if k < 4 else {}))
            store.r.zadd(REQUESTS_INDEX, {rid: 2e9 + k})  # in this order, newest last, after every other
        listed = store.list_requests(limit=3, states=["failed"])
        assert [r["request_id"] for r in listed] == [f"{tag}-003", f"{tag}-002", f"{tag}-001"]
        assert len(store.list_requests(limit=700, states=["FAILED"], since=2e9)) == 4
        assert len(store.list_requests(limit=10)) == 10
    finally:
        store.r.zrem(REQUESTS_INDEX, *made)
        store.delete_keys([f"dms:req:{rid}{suffix}" for rid in made for suffix in ("", ":events")])


def test_json_logs_are_one_object_per_line_with_the_task_named(
    tmp_path: Path, dms_app: Any, store: Any, redis_server: Any
) -> None:
    """DMS_LOG_FORMAT=json: what the worker logs, its own lines and its tasks' lines, is one
    JSON object per line with the same keys, and a task's lines name the task."""
    import json

    from tests.services import Worker

    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("logged")
    rid = unique_id("jsonlogs")
    q = rid.replace("-", "_")
    params = SyncParams(rid, str(src), str(tmp_path / "dst"), control_queue=f"t.ctl.{q}", data_queue=f"t.data.{q}")
    worker = Worker(f"json-{q}", f"{params.control_queue},{params.data_queue}",
                    {**redis_server.env(), "DMS_LOG_FORMAT": "json"}, tmp_path / "json.log").start()  # fmt: skip
    try:
        submit(dms_app, store, params)
        assert wait(store, rid, timeout=60)["state"] == "SUCCEEDED"
    finally:
        worker.stop()
    logged = [line for line in worker.log().splitlines() if "ready." in line or "succeeded in" in line]
    assert logged, worker.log()
    records = [json.loads(line) for line in logged]  # each of them a JSON object, nothing around it
    assert all({"time", "level", "logger", "message", "pid"} <= set(r) for r in records), records
    done = [r for r in records if "succeeded in" in r["message"]]
    assert any(r.get("task_name") == "dms.plan" or "dms.plan" in r["message"] for r in done), done


def test_cancel_ends_a_request_no_plan_works_on_and_a_late_plan_does_nothing(
    tmp_path: Path, dms_app: Any, store: Any, start_worker: Any
) -> None:
    """A request whose plan message waits in a queue nobody consumes (PENDING for good) ended
    only when a plan ran: cancel now ends it at once. When a worker takes that plan later,
    it finds the request ended and writes nothing."""
    from dms.client.submit import cancel

    src, dst = tmp_path / "src", tmp_path / "dst"
    _small_files(src, 3, 100)
    rid = unique_id("unstarted")
    q = rid.replace("-", "_")
    params = SyncParams(rid, str(src), str(dst), control_queue=f"t.ctl.{q}", data_queue=f"t.data.{q}")
    submit(dms_app, store, params)
    assert store.get(rid)["state"] == "PENDING"
    assert cancel(store, rid) is None
    info = store.get(rid)
    assert info["state"] == "CANCELLED" and info["end_reason"] == "cancelled" and info["settled"]
    assert not store.is_cancelled(rid) and store.r.ttl(Keys(rid).req) > 0
    start_worker(f"{params.control_queue},{params.data_queue}", concurrency=1)  # the plan runs now
    deadline = time.monotonic() + 30
    while store.queued_messages(params.control_queue) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)
    assert store.get(rid)["state"] == "CANCELLED" and not dst.exists()


def test_cancel_leaves_a_request_a_plan_works_on_to_that_plan(tmp_path: Path, store: Any, held_request: Any) -> None:
    """A planned request (units sent) is not ended by cancel itself: its units and finalize end
    it, removing what they staged (the tests above)."""
    from dms.client.submit import cancel

    src, dst = tmp_path / "src", tmp_path / "dst"
    _small_files(src, 4, 100)
    params, _ = held_request(src, dst, "started", parallelism=1, unit_max_files=1)
    assert cancel(store, params.request_id) is None
    assert store.get(params.request_id)["state"] not in ("CANCELLED", "FAILED", "SUCCEEDED")
    assert store.is_cancelled(params.request_id)
    store.set_state(params.request_id, RequestState.FAILED, error="ended by the test")  # no janitor acts on it


@pytest.mark.parametrize(("bwlimit", "parallelism"), [("1M", 1), ("2048", 2)])  # 1 MiB/s; 2 MiB/s in 2 lanes
def test_bwlimit_holds_the_request_to_its_rate(tmp_path: Path, dms_app: Any, store: Any, bwlimit: str,
                                               parallelism: int) -> None:  # fmt: skip
    """--bwlimit is the request's rate in all (rsync's reading: a bare number is KiB/s), each
    lane pacing its share: 4 MiB at 1 MiB/s cannot end in under ~4 s, nor 8 MiB at 2 MiB/s.
    Only the lower bound is a behaviour; a loaded machine may take longer."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    total = 4 * MIB * parallelism
    src.mkdir()
    for i in range(4 * parallelism):
        (src / f"f{i}").write_bytes(os.urandom(MIB))
    params = make_params(str(src), str(dst), request_id=unique_id("bwlimit"), bwlimit=bwlimit,
                         parallelism=parallelism, chunk_size="1MiB")  # fmt: skip
    assert params.bwlimit == MIB * parallelism
    began = time.monotonic()
    submit(dms_app, store, params)
    info = wait(store, params.request_id, timeout=120)
    took = time.monotonic() - began
    assert info["state"] == "SUCCEEDED" and info["bytes_done"] == total
    assert took >= 0.8 * total / params.bwlimit, f"{total} bytes in {took:.2f} s at {params.bwlimit} B/s"
    assert_same_tree(src, dst)
