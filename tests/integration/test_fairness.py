"""Fair scheduling: a small sync submitted behind a large one is not stuck behind its backlog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dms.client.submit import submit, wait
from dms.model import SyncParams
from tests.conftest import unique_id, wait_for_state
from tests.trees import MIB

pytestmark = pytest.mark.usefixtures("worker")


def test_small_sync_finishes_long_before_the_large_backlog(tmp_path: Path, dms_app: Any, store: Any) -> None:
    big_src, small_src = tmp_path / "big", tmp_path / "small"
    big_src.mkdir()
    small_src.mkdir()
    for i in range(24):  # 24 units of 64 MiB (sparse sources: cheap to make)
        with open(big_src / f"part{i:02d}", "wb") as f:
            f.truncate(64 * MIB)
    (small_src / "urgent.txt").write_text("needed now")
    big = SyncParams(unique_id("backlog"), str(big_src), str(tmp_path / "big-dst"), parallelism=2, fsync=False)
    submit(dms_app, store, big)
    wait_for_state(store, big.request_id, {"TRANSFERRING"})
    small = SyncParams(unique_id("urgent"), str(small_src), str(tmp_path / "small-dst"), parallelism=2)
    submit(dms_app, store, small)
    small_info = wait(store, small.request_id, poll=0.05, timeout=120)
    big_at_that_moment = store.get(big.request_id)
    assert small_info["state"] == "SUCCEEDED"
    # the large request still had most of its backlog ahead of it
    assert big_at_that_moment["state"] == "TRANSFERRING"
    assert big_at_that_moment["tasks_done"] < big_at_that_moment["tasks_total"] * 3 // 4
    assert wait(store, big.request_id, timeout=300)["state"] == "SUCCEEDED"
