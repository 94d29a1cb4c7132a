"""Symlinks and renames swapped into the source and the destination while a sync runs.

For each step of a request (before its plan, between plan and transfer, between transfer
and finalize) and each swap (a destination directory, a deep one, one renamed away with a
symlink put in its place, a source directory), the swap is made while the request waits at
that step (its workers are stopped there). Then: nothing outside the source and the
destination changed (a snapshot of the surrounding tree, before and after), no staging file
is anywhere but in the destination, the request ends by itself, and once the swap is undone a
resume makes the destination equal to the source. `--delete` is on, so the delete pass meets
the swaps too.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from dms.client.submit import resume, submit, wait
from dms.request import make_params
from tests.conftest import unique_id, wait_for_state
from tests.generative import tally
from tests.trees import MIB, assert_same_tree, meta_snapshot, write_unique

STEPS = ["plan", "transfer", "finalize"]
SWAPS = ["destination dir", "deep destination dir", "destination dir renamed away", "source dir"]


def build(src: Path, dst: Path, outside: Path) -> None:
    for d in ("a", "b", "c/sub"):
        (src / d).mkdir(parents=True)
        (dst / d).mkdir(parents=True)
    write_unique(src / "a" / "f1", 2 * MIB + 3, 1)
    write_unique(src / "b" / "f2", 2 * MIB + 5, 2)
    write_unique(src / "c" / "sub" / "f3", MIB, 3)
    (src / "top").write_bytes(b"top")
    for d in ("a", "b", "c/sub"):  # what --delete would remove, if it were reached through a link
        (dst / d / "stale").write_bytes(b"stale")
    for d in ("target", "deep", "secret"):
        (outside / d).mkdir(parents=True)
        (outside / d / "victim").write_bytes(b"must survive")
        (outside / d / "f1").write_bytes(b"tempting name")
    write_unique(outside / "secret" / "f1", 2 * MIB + 3, 99)  # same size as the real f1


def swap(kind: str, src: Path, dst: Path, outside: Path, aside: Path) -> None:
    if kind == "destination dir":
        shutil.rmtree(dst / "a")
        (dst / "a").symlink_to(outside / "target")
    elif kind == "deep destination dir":
        shutil.rmtree(dst / "c" / "sub")
        (dst / "c" / "sub").symlink_to(outside / "deep")
    elif kind == "destination dir renamed away":
        (dst / "b").rename(dst / "b.moved")
        (dst / "b").symlink_to(outside / "target")
    else:
        (src / "a").rename(aside / "a")
        (src / "a").symlink_to(outside / "secret")


def undo(kind: str, src: Path, dst: Path, aside: Path) -> None:
    for link in (dst / "a", dst / "b", dst / "c" / "sub"):
        if link.is_symlink():
            link.unlink()
    if kind == "source dir" and (src / "a").is_symlink():
        (src / "a").unlink()
        (aside / "a").rename(src / "a")


def staging_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".partial")]


@pytest.mark.parametrize("kind", SWAPS)
@pytest.mark.parametrize("step", STEPS)
def test_a_swap_at_each_step_changes_nothing_outside(
    tmp_path: Path, dms_app: Any, store: Any, start_worker: Any, step: str, kind: str
) -> None:
    with tally("hostile paths: a swap at each step"):
        _swap_at(tmp_path, dms_app, store, start_worker, step, kind)


def _swap_at(tmp_path: Path, dms_app: Any, store: Any, start_worker: Any, step: str, kind: str) -> None:
    src, dst, outside, aside = tmp_path / "src", tmp_path / "dst", tmp_path / "outside", tmp_path / "aside"
    aside.mkdir()
    build(src, dst, outside)
    before = meta_snapshot(outside)
    rid = unique_id("hostile")
    q = rid.replace("-", "_")
    params = make_params(str(src), str(dst), request_id=rid, chunk_size="1MiB", parallelism=2, delete=True,
                         control_queue=f"t.ctl.{q}", data_queue=f"t.data.{q}")  # fmt: skip
    submit(dms_app, store, params)
    if step == "plan":
        swap(kind, src, dst, outside, aside)
    planner = start_worker(params.control_queue)
    deadline = time.monotonic() + 60
    while not (store.get(rid) or {}).get("planned") and time.monotonic() < deadline:
        if store.get(rid)["state"] in ("FAILED", "SUCCEEDED"):
            break
        time.sleep(0.02)
    planner.stop()
    if step == "transfer":
        swap(kind, src, dst, outside, aside)
    data = start_worker(params.data_queue)
    while store.get(rid)["tasks_done"] < store.get(rid)["tasks_total"] and time.monotonic() < deadline:
        time.sleep(0.02)
    data.stop()
    if step == "finalize":
        swap(kind, src, dst, outside, aside)
    start_worker(f"{params.control_queue},{params.data_queue}")
    info = wait_for_state(store, rid, {"SUCCEEDED", "FAILED"}, timeout=120)

    assert meta_snapshot(outside) == before, f"{step}/{kind}: something outside changed ({info['state']})"
    assert not staging_files(outside) and not staging_files(aside)
    undo(kind, src, dst, aside)
    if info["state"] != "SUCCEEDED":
        resume(dms_app, store, rid)
        info = wait(store, rid, timeout=120)
        assert info["state"] == "SUCCEEDED", (step, kind, store.errors(rid, limit=5))
    else:  # the swap was synced as it was (a source symlink is copied as a link): sync the undo
        again = make_params(str(src), str(dst), request_id=unique_id("hostile-again"), delete=True,
                            control_queue=params.control_queue, data_queue=params.data_queue)  # fmt: skip
        submit(dms_app, store, again)
        assert wait(store, again.request_id, timeout=120)["state"] == "SUCCEEDED"
    assert_same_tree(src, dst)
    assert not staging_files(dst)
    assert meta_snapshot(outside) == before
    assert not os.path.lexists(dst / "b.moved")  # --delete removed what the swap left inside
