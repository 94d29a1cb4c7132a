"""A re-sync of an unchanged tree changes nothing and reports nothing: links keep their
ctime, a dry run lists no link, and --json carries the dry run's would-do list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_rsync_semantics import dms
from tests.services import RedisServer

pytestmark = pytest.mark.usefixtures("worker")


def linked_tree(src: Path) -> None:
    (src / "d").mkdir(parents=True)
    (src / "file").write_bytes(b"content")
    os.link(src / "file", src / "d" / "second-name")
    os.symlink("file", src / "link")
    os.symlink("/nowhere", src / "d" / "dangling")
    os.mkfifo(src / "fifo")


def test_unchanged_links_keep_their_ctime(tmp_path: Path, dms_app: Any, store: Any) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    linked_tree(src)
    assert dms(dms_app, store, src, dst, specials=True)["state"] == "SUCCEEDED"
    names = ["link", "d/dangling", "fifo", "d/second-name"]
    before = {n: os.lstat(dst / n).st_ctime_ns for n in names}
    assert dms(dms_app, store, src, dst, specials=True)["state"] == "SUCCEEDED"
    after = {n: os.lstat(dst / n).st_ctime_ns for n in names}
    assert after == before


def test_a_dry_run_of_an_unchanged_tree_lists_nothing_and_json_carries_the_list(
    tmp_path: Path, redis_server: RedisServer, dms_app: Any, store: Any
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    linked_tree(src)
    assert dms(dms_app, store, src, dst, specials=True)["state"] == "SUCCEEDED"
    (src / "new").write_bytes(b"new")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")} | redis_server.env()
    r = subprocess.run([sys.executable, "-m", "dms.cli", "sync", str(src), str(dst), "-n", "-D", "--wait", "--json"],
                       env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["dry_run_lines"] == ["copy new"], out
    assert not (dst / "new").exists()
