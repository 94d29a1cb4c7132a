"""Faults injected for real: a full destination file system, a hung worker.

(A SIGKILLed node and corruption in flight are in test_clusters.py; hostile bytes on the
data port in test_clusters.py and the C++ fuzz corpus.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from dms.client import resume, submit, wait
from dms.model import make_params
from tests.conftest import unique_id
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
    rid = unique_id("sigstop")
    q = rid.replace("-", "_")
    params = make_params(str(src), str(dst), request_id=rid, chunk_size="1MiB", parallelism=2,
                         control_queue=f"t.ctl.{q}", data_queue=f"t.data.{q}")  # fmt: skip
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
