"""Faults injected for real: a full destination file system, a hung worker.

(A SIGKILLed node and corruption in flight are in test_clusters.py; hostile bytes on the
data port in test_clusters.py and the C++ fuzz corpus.)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from dms.client.submit import resume, submit, wait
from dms.finalize import strays
from dms.fs.paths import staging_path
from dms.model import FileRecord, RequestState, UnitPiece
from dms.request import make_params
from dms.state.requests import Keys
from tests.conftest import on_own_queues, unique_id
from tests.trees import MIB, write_unique

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
def small_fs(tmp_path: Path) -> Any:
    """A 24 MiB tmpfs: a destination that fills up (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root; CI runs as root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_destination_fails_clearly_publishes_nothing_partial_and_resumes(
    tmp_path: Path, dms_app: Any, store: Any, small_fs: Path
) -> None:
    src, dst = tmp_path / "src", small_fs / "dst"
    src.mkdir()
    for i in range(4):
        write_unique(src / f"part{i}.bin", 10 * MIB, i)  # 40 MiB into 24 MiB
    rid = unique_id("enospc")
    params = make_params(str(src), str(dst), request_id=rid, chunk_size="2MiB", parallelism=2)
    submit(dms_app, store, params)
    info = wait(store, rid, timeout=120)
    assert info["state"] == "FAILED" and info["files_failed"] >= 1
    assert "No space left on device" in info["error"] or any(
        "No space left" in e["error"] for e in store.errors(rid)
    ), store.errors(rid)
    for p in dst.iterdir():  # whatever was published is whole and right; nothing partial is visible
        if not p.name.startswith("."):
            assert p.read_bytes() == (src / p.name).read_bytes()
    published_before = {p.name for p in dst.iterdir() if not p.name.startswith(".")}
    assert len(published_before) < 4
    subprocess.run(["mount", "-o", "remount,size=100m", str(small_fs)], check=True)  # space freed
    resume(dms_app, store, rid)
    info = wait(store, rid, timeout=120)
    assert info["state"] == "SUCCEEDED", store.errors(rid)
    for i in range(4):
        assert (dst / f"part{i}.bin").read_bytes() == (src / f"part{i}.bin").read_bytes()
    assert not [p for p in dst.iterdir() if p.name.endswith(".partial")]
    assert info["files_uptodate"] == len(published_before)


def test_a_hung_worker_waking_up_does_no_harm(tmp_path: Path, dms_app: Any, store: Any, start_worker: Any) -> None:
    """SIGSTOP a worker in the middle of a unit, let another worker finish the request through
    resume --force, then SIGCONT: the woken worker's late work changes nothing."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(4):
        write_unique(src / f"f{i}.bin", 8 * MIB, 10 + i)
    params = on_own_queues("sigstop", src, dst, chunk_size="1MiB", parallelism=2)
    rid = params.request_id
    start_worker(params.control_queue)
    sleeper = start_worker(params.data_queue, concurrency=1)
    submit(dms_app, store, params)
    deadline = time.monotonic() + 60
    while store.get(rid)["tasks_done"] < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(sleeper.proc.pid, signal.SIGSTOP)  # hangs mid-way, holding its unit
    try:
        resume(dms_app, store, rid, force=True)
        start_worker(params.data_queue, concurrency=2)
        info = wait(store, rid, timeout=120)
        assert info["state"] == "SUCCEEDED", store.errors(rid)
    finally:
        os.killpg(sleeper.proc.pid, signal.SIGCONT)
    time.sleep(3)  # the woken worker finishes (or drops) what it held
    after = store.get(rid)
    assert after["state"] == "SUCCEEDED" and after["files_failed"] == 0
    for i in range(4):
        assert (dst / f"f{i}.bin").read_bytes() == (src / f"f{i}.bin").read_bytes()
    assert not [p for p in dst.iterdir() if p.name.endswith(".partial")]


def test_a_late_copy_of_a_recorded_unit_fails_nothing_and_leaves_nothing(
    tmp_path: Path, dms_app: Any, store: Any, start_worker: Any
) -> None:
    """Two copies of one unit run; one is held up on a piece while the other records the unit.
    When the held-up one wakes, its piece fails (ESTALE: the file it wrote was published under
    it): that failure failed the file, and the request, although the unit was done. The
    first record of a unit is its outcome; the copies leave no staging file behind."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(6):
        write_unique(src / f"f{i}.bin", 24 * MIB, 40 + i)
    params = on_own_queues("heldup", src, dst, chunk_size="256MiB", parallelism=1)
    rid = params.request_id
    planner = start_worker(params.control_queue)
    sleeper = start_worker(params.data_queue, concurrency=1)
    submit(dms_app, store, params)
    deadline = time.monotonic() + 60
    while not (store.get(rid) or {}).get("bytes_inflight") and time.monotonic() < deadline:
        time.sleep(0.002)
    os.killpg(sleeper.proc.pid, signal.SIGSTOP)  # held up in the middle of the one unit
    stopped = [sleeper]
    try:
        assert store.get(rid)["tasks_total"] == 1 and store.is_planned(rid)
        os.killpg(planner.proc.pid, signal.SIGSTOP)  # finalize waits: the request stays TRANSFERRING
        stopped.append(planner)
        # a second copy of the unit, as a Redis restart or a janitor publishes one
        dms_app.send_task("dms.transfer", args=(rid, 0, store.params(rid).epoch), queue=params.data_queue)
        start_worker(params.data_queue, concurrency=1)
        deadline = time.monotonic() + 60
        while not store.unit_done(rid, 0) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.unit_done(rid, 0) and store.get(rid)["state"] == "TRANSFERRING"
        os.killpg(sleeper.proc.pid, signal.SIGCONT)  # wakes into a unit another copy recorded
        stopped.remove(sleeper)
        time.sleep(3)
        left = [p.name for p in dst.iterdir() if p.name.endswith(".partial")]
        os.killpg(planner.proc.pid, signal.SIGCONT)
        stopped.remove(planner)
        info = wait(store, rid, timeout=120)
        assert info["state"] == "SUCCEEDED", store.errors(rid)
    finally:
        for w in stopped:
            os.killpg(w.proc.pid, signal.SIGCONT)
    assert sorted(p.name for p in dst.iterdir()) == [f"f{i}.bin" for i in range(6)], left  # no staging left
    for i in range(6):
        assert (dst / f"f{i}.bin").read_bytes() == (src / f"f{i}.bin").read_bytes()


class _Throttle:
    """Run a worker's process group 2% of the time (SIGSTOP/SIGCONT cycles): a copy that
    keeps running, only slowly, as a duplicate on a loaded node does."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            os.killpg(self.pgid, signal.SIGSTOP)
            time.sleep(0.098)
            os.killpg(self.pgid, signal.SIGCONT)
            time.sleep(0.002)

    def __enter__(self) -> _Throttle:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()
        os.killpg(self.pgid, signal.SIGCONT)


def _staged(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".partial")] if directory.is_dir() else []


def test_a_copy_still_running_after_the_end_leaves_no_staging_file(
    tmp_path: Path, dms_app: Any, store: Any, start_worker: Any
) -> None:
    """Two copies of a unit of many small files run; the fast one records it and the request
    ends SUCCEEDED while the slow one is still at work. The writers create a staging file
    wherever its name is missing, so the slow copy created the staging names of files already
    published, and nothing removed them (hidden .partial files after SUCCEEDED, seen after
    Redis restarts on a four-host topology). The losing copy now describes what it wrote and
    its strays are removed, with their directory's mtime put back."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    for i in range(1000):
        write_unique(src / "d" / f"f{i:04}", 128 * 1024, 5000 + i)
    os.utime(src / "d", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    params = on_own_queues("strays", src, dst, chunk_size="1GiB", parallelism=1)
    rid = params.request_id
    start_worker(params.control_queue)
    slow = start_worker(params.data_queue, concurrency=1)
    duplicates = params.data_queue + ".dup"
    fast = start_worker(duplicates, concurrency=1)  # its own queue: the slow worker cannot take the copy
    seen_after_end: list[str] = []
    with _Throttle(slow.proc.pid):  # slow from the start: its copy is at work when the fast one ends
        submit(dms_app, store, params)
        deadline = time.monotonic() + 60
        while not _staged(dst / "d") and time.monotonic() < deadline:  # the slow copy is at work
            time.sleep(0.002)
        assert store.get(rid)["tasks_total"] == 1, "the tree must be one unit"
        # a second copy of the unit, as a Redis restart or a janitor publishes one
        dms_app.send_task("dms.transfer", args=(rid, 0, store.params(rid).epoch), queue=duplicates)
        info = wait(store, rid, timeout=120)
        assert info["state"] == "SUCCEEDED", store.errors(rid)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # the slow copy goes on until its next check
            seen_after_end += _staged(dst / "d")
            time.sleep(0.05)
    assert fast.proc.poll() is None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _staged(dst / "d"):
        time.sleep(0.1)
    names = sorted(p.name for p in (dst / "d").iterdir())
    assert names == [f"f{i:04}" for i in range(1000)], [n for n in names if n.endswith(".partial")][:5]
    removed = [e for e in store.events(rid) if e["event"] == "strays removed"]
    assert removed, f"no stray was removed: the case did not happen (seen after the end: {seen_after_end[:3]})"
    assert os.stat(dst / "d").st_mtime_ns == os.stat(src / "d").st_mtime_ns
    for i in range(0, 1000, 97):
        assert (dst / "d" / f"f{i:04}").read_bytes() == (src / "d" / f"f{i:04}").read_bytes()


def test_strays_are_kept_until_the_end_and_removed_only_beneath_the_destination(tmp_path: Path, store: Any) -> None:
    """The bookkeeping behind the test above: a description is kept while the request runs or
    waits for resume (a FAILED request's, with its retention), refused once it ended
    SUCCEEDED or CANCELLED (the caller removes the strays then); any name survives the
    description; removal goes through no symbolic link and restores directory times."""
    src, dst, outside = tmp_path / "src", tmp_path / "dst", tmp_path / "outside"
    odd = os.fsdecode(b"caf\xe9 \n name")  # not UTF-8, with a newline
    for d in (src / "a" / "b", dst / "a" / "b", outside):
        d.mkdir(parents=True)
    (src / "link").mkdir()
    (dst / "link").symlink_to(outside)  # swapped in on the destination: never gone through
    os.utime(src / "a" / "b", ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))
    rid = unique_id("straybook")
    params = make_params(str(src), str(dst), request_id=rid)
    relpaths = ["top", f"a/b/{odd}", "a/b/plain", "link/x"]
    pieces = [UnitPiece(FileRecord(i, rel, 1, 0, 0, 0o644), 0, 1) for i, rel in enumerate(relpaths)]
    blob = strays.describe(params, pieces)
    files, times = strays.read(blob)
    assert sorted(files) == sorted(relpaths)
    assert times["a/b"][0] == 1_500_000_000_000_000_000 and "" in times

    assert store.note_strays(rid, blob) == -1  # no such request
    store.create(params)
    assert store.note_strays(rid, blob) == 1
    store.set_state(rid, RequestState.FAILED)
    store.set_retention(rid, 3600, 1)
    assert store.note_strays(rid, blob) == 1  # resume may still want what they staged
    assert 0 < store.r.ttl(Keys(rid).strays) <= 3600  # and the FAILED request's retention applies
    assert store.take_strays(rid) == [blob, blob] and store.take_strays(rid) == []
    store.r.hset(Keys(rid).req, "state", RequestState.SUCCEEDED.value)
    assert store.note_strays(rid, blob) == 0 and store.take_strays(rid) == []

    for rel in relpaths[:3]:
        Path(staging_path(str(dst / rel), rid)).write_bytes(b"x")
    Path(staging_path(str(outside / "x"), rid)).write_bytes(b"outside")
    (dst / "a" / "b" / "plain").write_bytes(b"published")
    assert strays.remove(params, [blob]) == 3
    assert sorted(os.listdir(dst / "a" / "b")) == ["plain"]
    assert sorted(os.listdir(dst)) == ["a", "link"]
    assert os.listdir(outside) == [os.path.basename(staging_path(str(outside / "x"), rid))]
    assert os.stat(dst / "a" / "b").st_mtime_ns == 1_500_000_000_000_000_000
    assert strays.remove(params, [blob]) == 0


def test_source_changing_during_the_transfer_is_reported_never_published_mixed_and_resumes(
    tmp_path: Path, dms_app: Any, store: Any, start_worker: Any
) -> None:
    """Plan, then change sources for real while (or before) their chunks are copied: a file
    rewritten in place mid-way, one that grows, one that shrinks. Each is reported as changed,
    none is published (no mix of old and new bytes), the untouched file is, and resume copies
    the new contents whole (the old staged chunks are not carried over: the file's identity
    changed)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    write_unique(src / "rewritten.bin", 64 * MIB, 1)
    write_unique(src / "grows.bin", 4 * MIB, 2)
    write_unique(src / "shrinks.bin", 4 * MIB, 3)
    write_unique(src / "same.bin", 2 * MIB, 4)
    params = on_own_queues("srcchange", src, dst, chunk_size="1MiB", parallelism=1)
    rid = params.request_id
    start_worker(params.control_queue)
    submit(dms_app, store, params)
    deadline = time.monotonic() + 60
    while not (store.get(rid) or {}).get("planned") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.get(rid)["planned"], "the plan did not finish"
    with open(src / "grows.bin", "ab") as f:  # changed after planning, before any copy
        f.write(b"more")
    os.truncate(src / "shrinks.bin", 1 * MIB)
    copier = start_worker(params.data_queue, concurrency=1)
    while store.get(rid)["bytes_done"] < 2 * MIB and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(copier.proc.pid, signal.SIGSTOP)  # hold the copier while the big file is rewritten
    try:
        assert store.get(rid)["bytes_done"] < 60 * MIB, "the big file was copied before it could change"
        write_unique(src / "rewritten.bin", 64 * MIB, 99)
    finally:
        os.killpg(copier.proc.pid, signal.SIGCONT)
    info = wait(store, rid, timeout=120)
    assert info["state"] == "FAILED", info
    reported = {e["path"]: e["error"] for e in store.errors(rid)}
    assert set(reported) == {"rewritten.bin", "grows.bin", "shrinks.bin"}, reported
    assert all("changed" in m or "shrank" in m or "ended at byte" in m for m in reported.values()), reported
    assert sorted(p.name for p in dst.iterdir() if not p.name.startswith(".")) == ["same.bin"]
    assert (dst / "same.bin").read_bytes() == (src / "same.bin").read_bytes()

    resume(dms_app, store, rid)
    info = wait(store, rid, timeout=120)
    assert info["state"] == "SUCCEEDED", store.errors(rid)
    for name in ("rewritten.bin", "grows.bin", "shrinks.bin", "same.bin"):
        assert (dst / name).read_bytes() == (src / name).read_bytes(), name
    assert not [p for p in dst.iterdir() if p.name.startswith(".")]


def test_symlinks_swapped_into_the_destination_mid_sync_are_never_written_through(
    tmp_path: Path, dms_app: Any, store: Any, start_worker: Any
) -> None:
    """Someone who can write into the destination swaps directories for symlinks to places
    outside it: `a` before its files are copied, `b` after they were staged (and plants the
    staged file there, to tempt the rename). Nothing is written outside: `a`'s symlink is
    replaced by a real directory (rsync's type change) and its file published there; `b`'s
    file fails with a clear reason (its staged bytes are behind the link), `b` becomes a real
    directory again, and resume completes."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    outside_a, outside_b = tmp_path / "outside_a", tmp_path / "outside_b"
    for d in (src / "a", src / "b", src / "c", outside_a, outside_b):
        d.mkdir(parents=True)
    write_unique(src / "a" / "f1", 2 * MIB, 1)
    write_unique(src / "b" / "f2", 2 * MIB, 2)
    write_unique(src / "c" / "f3", 2 * MIB, 3)
    params = on_own_queues("swap", src, dst, chunk_size="1MiB", parallelism=2)
    rid = params.request_id
    planner = start_worker(params.control_queue)
    submit(dms_app, store, params)
    deadline = time.monotonic() + 60
    while not (store.get(rid) or {}).get("planned") and time.monotonic() < deadline:
        time.sleep(0.02)
    planner.stop()  # finalize waits in its queue until the swap below is done
    dst.mkdir(exist_ok=True)
    assert (dst / "a").is_dir() and not (dst / "a").is_symlink()  # made by the planner (decision 0016)
    (dst / "a").rmdir()
    (dst / "a").symlink_to(outside_a)
    start_worker(params.data_queue)
    while store.get(rid)["tasks_done"] < store.get(rid)["tasks_total"] and time.monotonic() < deadline:
        time.sleep(0.02)
    staged = [p for p in (dst / "b").iterdir()]
    assert len(staged) == 1 and staged[0].name.endswith(".partial"), staged
    (dst / "b").rename(dst / "b.moved")
    (dst / "b").symlink_to(outside_b)
    planted = outside_b / staged[0].name
    planted.write_bytes((dst / "b.moved" / staged[0].name).read_bytes())
    planted.chmod(0o600)
    start_worker(params.control_queue)
    info = wait(store, rid, timeout=120)

    assert info["state"] == "FAILED", info
    errors = {e["path"]: e["error"] for e in store.errors(rid)}
    # `a` was a symlink where the source has a directory: replaced by one, as rsync does (never
    # followed), so f1 is published inside the destination
    assert "a/f1" not in errors and (dst / "a" / "f1").read_bytes() == (src / "a" / "f1").read_bytes()
    assert (dst / "a").is_dir() and not (dst / "a").is_symlink()
    # `b` became a symlink after f2 was staged: the staged bytes are behind it, so f2 fails
    assert "publish refused" in errors["b/f2"] and "symbolic link" in errors["b/f2"], errors
    assert list(outside_a.iterdir()) == []
    assert list(outside_b.iterdir()) == [planted] and planted.stat().st_mode & 0o777 == 0o600
    assert (dst / "c" / "f3").read_bytes() == (src / "c" / "f3").read_bytes()

    resume(dms_app, store, rid)
    info = wait(store, rid, timeout=120)
    assert info["state"] == "SUCCEEDED", store.errors(rid)
    for rel in ("a/f1", "b/f2", "c/f3"):
        assert (dst / rel).read_bytes() == (src / rel).read_bytes(), rel
    assert list(outside_a.iterdir()) == [] and list(outside_b.iterdir()) == [planted]


@pytest.mark.parametrize(
    ("how", "persistence", "down", "transport"),
    [
        (signal.SIGTERM, "aof", 1, "socket"),
        (signal.SIGKILL, "aof", 1, "tcp"),
        (signal.SIGTERM, "rdb", 1, "tcp"),
        (signal.SIGKILL, "aof", 60, "socket"),
    ],
    ids=["term-aof-1s-socket", "kill-aof-1s-tcp", "term-rdb-1s-tcp", "kill-aof-60s-socket"],
)
def test_redis_restarting_mid_request_the_worker_lives_and_the_request_completes(
    tmp_path: Path, how: signal.Signals, persistence: str, down: int, transport: str
) -> None:
    """Redis is stopped mid-request (SIGTERM: a clean shutdown that saves; SIGKILL: a crash)
    and started again on the same files after `down` seconds, over TCP or a Unix socket,
    with the worker started by the README's command (mingle, gossip and heartbeats on). No
    worker process exits, nothing it logs says a recovery failed, the messages the old Redis
    process had delivered are put back at once (dms.worker.broker_recovery), publishes that
    failed meanwhile are retried, and the request completes byte-exact without `resume`."""
    from dms.state.requests import RequestStore, connect
    from tests.clusters import free_port
    from tests.services import RedisServer, Worker

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(16):
        write_unique(src / f"f{i:02d}.bin", 16 * MIB, 200 + i)
    saving = (["--appendonly", "yes", "--appendfsync", "always"] if persistence == "aof"
              else ["--save", "3600 1", "--appendonly", "no"])  # fmt: skip
    port = free_port() if transport == "tcp" else 0
    server = RedisServer(tmp_path / "redis", options=[*saving, *(["--port", str(port)] if port else [])])
    server.directory.mkdir()
    server.start()
    env = server.env()
    if port:
        url = f"redis://127.0.0.1:{port}/0"
        env = {"DMS_BROKER_URL": url, "DMS_RESULT_BACKEND": url, "DMS_STATE_URL": url}
    worker = Worker("restart", "dms.control,dms.data", env, tmp_path / "worker.log", concurrency=2, as_readme=True)
    try:
        worker.start()
        rid = unique_id("redis-restart")
        subprocess.run([sys.executable, "-m", "dms.cli", "sync", str(src), str(dst), "--id", rid, "--chunk-size",
                        "1MiB", "-p", "4"], env={**os.environ, **env}, check=True)  # fmt: skip
        store = RequestStore(connect(server.state_url))
        deadline = time.monotonic() + 60
        while (store.get(rid) or {}).get("bytes_done", 0) < 16 * MIB and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.proc is not None
        os.killpg(server.proc.pid, how)
        server.proc.wait()
        server.proc = None
        time.sleep(down)  # down for a while: workers see the connection fail and keep reconnecting
        server.start()
        store = RequestStore(connect(server.state_url))
        info = wait(store, rid, timeout=240)
        log = worker.log()
        assert info["state"] == "SUCCEEDED", (info, store.errors(rid), log[-3000:])
        for i in range(16):
            assert (dst / f"f{i:02d}.bin").read_bytes() == (src / f"f{i:02d}.bin").read_bytes()
        assert info["files_done"] == 16 and info["bytes_done"] == 16 * 16 * MIB
        assert worker.proc is not None and worker.proc.poll() is None, log[-3000:]
        assert "Unrecoverable error" not in log, log[-3000:]
        assert "could not recover" not in log and "could not restore" not in log, log[-3000:]
    finally:
        worker.stop()
        server.stop()


def test_an_idle_worker_tries_to_reconnect_every_two_seconds_at_most(tmp_path: Path) -> None:
    """A worker's consumer that lost Redis retried at kombu's intervals (2 s, then 2 s more each
    time, up to 30 s): on a four-host topology a worker reached a Redis back after a 20-s
    outage 10 s late, and the janitor took its node for dead meanwhile. It now tries every
    RECONNECT_MAX seconds at most, and reconnects."""
    from dms.worker.broker_recovery import RECONNECT_MAX
    from tests.services import RedisServer, Worker

    server = RedisServer(tmp_path / "redis", options=["--appendonly", "yes"])
    server.directory.mkdir()
    server.start()
    worker = Worker("idle", "dms.control", server.env(), tmp_path / "idle.log", concurrency=1)
    try:
        worker.start()
        assert server.proc is not None
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
        server.proc = None
        time.sleep(12)  # kombu's intervals would have reached 4 and 6 s by now
        server.start()
        deadline = time.monotonic() + 30
        while worker.log().count("Connected to") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        log = worker.log()
        assert log.count("Connected to") >= 2, log[-3000:]
        waits = [float(w) for w in re.findall(r"Trying again in ([\d.]+) seconds", log)]
        assert len(waits) >= 4 and max(waits) <= RECONNECT_MAX, waits
        assert worker.proc is not None and worker.proc.poll() is None
    finally:
        worker.stop()
        server.stop()


def test_redis_losing_its_state_mid_request_fails_clearly_and_a_resubmit_finishes(tmp_path: Path) -> None:
    """A Redis without persistence is killed mid-request and comes back empty: the waiting
    client says the request's state was lost and how to finish it (exit 7), nothing partial
    is published, and after the workers restart, submitting the same paths with the same id
    completes the tree."""
    from tests.services import RedisServer, Worker

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(16):
        write_unique(src / f"f{i:02d}.bin", 8 * MIB, 300 + i)
    volatile = RedisServer(tmp_path / "volatile")
    volatile.directory.mkdir()
    volatile.start()
    worker = Worker("volatile", "dms.control,dms.data", volatile.env(), tmp_path / "volatile-worker.log")
    try:
        worker.start()
        env = {**os.environ, **volatile.env()}
        rid = unique_id("redis-lost")
        argv = [sys.executable, "-m", "dms.cli", "sync", str(src), str(dst), "--id", rid, "--chunk-size", "1MiB",
                "-p", "2"]  # fmt: skip
        client = subprocess.Popen([*argv, "--wait"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)  # fmt: skip
        from dms.state.requests import RequestStore, connect

        store = RequestStore(connect(volatile.state_url))
        deadline = time.monotonic() + 60
        while (store.get(rid) or {}).get("bytes_done", 0) < 8 * MIB and time.monotonic() < deadline:
            time.sleep(0.01)
        assert volatile.proc is not None
        os.killpg(volatile.proc.pid, signal.SIGKILL)
        volatile.proc.wait()
        volatile.proc = None
        volatile.start()  # empty: no AOF, no RDB
        out, err = client.communicate(timeout=90)
        assert client.returncode == 7, (out, err)
        assert "vanished from Redis" in err and f"--id {rid}" in err, err
        for p in dst.iterdir():  # whatever was published is whole
            if not p.name.startswith("."):
                assert p.read_bytes() == (src / p.name).read_bytes()
        # as operations.md says: restart the workers (Celery's queue bindings went with the data,
        # and tasks of the lost incarnation may still be running), then submit again
        worker.stop()
        worker.start()
        again = subprocess.run([*argv, "--wait"], env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        for i in range(16):
            assert (dst / f"f{i:02d}.bin").read_bytes() == (src / f"f{i:02d}.bin").read_bytes()
    finally:
        worker.stop()
        volatile.stop()


def test_a_restore_on_a_torn_down_broker_connection_does_not_kill_the_worker(redis_server: Any) -> None:
    """kombu race (dms.worker.broker_recovery): closing a channel whose transport connection is
    already gone raised AttributeError from restore_unacked, which Celery treats as fatal.
    With DMS's guard the close logs and the message stays in Redis's unacked set, where
    the reconnect step finds it."""
    from kombu import Connection, Queue

    import dms.worker.app  # noqa: F401  (installs the guard)

    queue = Queue(unique_id("t.torn"))
    with Connection(redis_server.broker_url) as conn:
        channel = conn.channel()
        producer = conn.Producer(channel)
        producer.publish({"x": 1}, routing_key=queue.name, declare=[queue])
        message = queue(channel).get(no_ack=False)  # delivered, not acknowledged
        assert message is not None
        client = channel.client
        assert client.zcard(channel.unacked_index_key) >= 1
        channel.connection.client = None  # what the race leaves behind
        channel._pool = None
        channel.qos.restore_unacked_once()  # raised AttributeError before the guard
        assert client.hexists(channel.unacked_key, message.delivery_tag)  # still there for the reconnect step
        conn.transport.client = conn  # let the context manager close cleanly


def test_an_ack_on_a_torn_down_broker_connection_does_not_kill_the_worker(redis_server: Any) -> None:
    """kombu race seen on a Redis SIGTERM: a task that was running finishes after the
    connection died and acknowledges its message; kombu's `_remove_from_indices` then raised
    AttributeError ("'NoneType' object has no attribute 'client'"), which ended the worker.
    With the guard the ack logs, and the message stays unacked for the reconnect step."""
    from kombu import Connection, Queue

    import dms.worker.app  # noqa: F401  (installs the guard)

    queue = Queue(unique_id("t.ack"))
    with Connection(redis_server.broker_url) as conn:
        channel = conn.channel()
        conn.Producer(channel).publish({"x": 1}, routing_key=queue.name, declare=[queue])
        message = queue(channel).get(no_ack=False)
        assert message is not None
        client = channel.client
        channel.connection = None  # the transport let go of the channel's connection
        channel._pool = None
        channel.qos.ack(message.delivery_tag)  # raised AttributeError before the guard
        assert client.hexists(channel.unacked_key, message.delivery_tag)
        assert message.delivery_tag in channel.qos._dirty  # forgotten locally, as an ack does
