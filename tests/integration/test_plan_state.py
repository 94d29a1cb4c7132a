"""What the plan keeps in Redis: a few bytes per file while units wait, about a bit once done.

The layout of decision 0036: a file's record is written once, packed in its unit's manifest;
a unit's manifest goes when the unit is recorded; a file its transfer published keeps no
record and no digest. Checked on a tree of 4,000 small files whose times carry random
nanoseconds (what a real tree has, and what compresses least), planned while no worker
takes its transfers, then transferred while no worker takes its finalize.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

from dms.state.requests import Keys
from tests.conftest import wait_for_state

FILES = 4_000


def _tree(root: Path) -> None:
    rng = random.Random(7)
    now = 1_780_000_000 * 10**9
    for i in range(FILES):
        d = root / f"project-{i // 400:02d}" / "run"
        if i % 400 == 0:
            d.mkdir(parents=True)
        f = d / f"sample_{i:06d}.dat"
        f.write_bytes(rng.randbytes(rng.randint(0, 2048)))
        os.utime(f, ns=(now - rng.randint(0, 10**15), now - rng.randint(0, 10**15)))


def _request_keys(store: Any, rid: str) -> dict[str, int]:
    """Each key of the request -> the bytes Redis says it takes (MEMORY USAGE)."""
    keys = [*store.r.scan_iter(match=Keys(rid).pattern("*"), count=1000), Keys(rid).req]
    return {str(k): int(store.r.memory_usage(k) or 0) for k in keys}


def test_the_plan_keeps_few_bytes_per_file_and_drops_what_is_done(
    tmp_path: Path, store: Any, held_request: Any, start_worker: Any
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _tree(src)
    params, planner = held_request(src, dst, "compact", unit_max_files=100)
    deadline = time.monotonic() + 120
    while not (info := store.get(params.request_id))["planned"] and time.monotonic() < deadline:
        time.sleep(0.1)  # the whole plan is written once `planned` is set
    assert info["planned"] and info["files_total"] == FILES and info["tasks_total"] == FILES // 100
    planner.stop()  # finalize's message waits: what the done units left can be looked at

    planned = _request_keys(store, params.request_id)
    units = [k for k in planned if ":unit:" in k and not k.endswith(":about")]
    assert len(units) == info["tasks_total"]
    assert not [k for k in planned if ":files:" in k]  # no file shard: the records are in the units only
    per_file = sum(planned.values()) / FILES
    print(f"plan state while every unit waits: {per_file:.1f} B per file")  # docs/scale.md quotes it
    assert per_file <= 32, f"{per_file:.1f} bytes per file while every unit waits: {planned}"

    start_worker(params.data_queue)
    keys = Keys(params.request_id)
    deadline = time.monotonic() + 120
    while store.r.bitcount(keys.units_done) < info["tasks_total"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert store.r.bitcount(keys.units_done) == info["tasks_total"]
    done = _request_keys(store, params.request_id)
    assert not [k for k in done if ":unit:" in k], "a recorded unit keeps its manifest"
    assert not [k for k in done if ":digests:" in k], "a file its transfer published keeps a record or digest"
    assert store.r.bitcount(keys.published) == FILES

    start_worker(params.control_queue)
    info = wait_for_state(store, params.request_id, {"SUCCEEDED", "FAILED", "CANCELLED"}, timeout=120)
    assert info["state"] == "SUCCEEDED" and info["files_done"] == FILES and info["bytes_done"] == info["bytes_total"]
    for f in sorted(src.rglob("*.dat"))[::97]:
        copy = dst / f.relative_to(src)
        assert copy.read_bytes() == f.read_bytes() and copy.stat().st_mtime_ns == f.stat().st_mtime_ns
