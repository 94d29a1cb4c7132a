"""Type changes: whatever the destination has under a name, the source's type wins as rsync's does.

Every pair (what the destination holds, what the source now holds) of: a file, an empty
directory, a directory with content, a symbolic link (to a file, and to a directory), a
hard-link set and a fifo; at the top and two levels down; with and without --delete. The
destination is first made by a sync of the old tree (by each tool into its own copy), then
the source flips, and both tools sync again; the two destinations must agree, and so must
the outcome (rsync's exit 0 exactly when DMS SUCCEEDED). The table is docs/operations.md's
"Type changes".
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_rsync_semantics import RSYNC, dms
from tests.trees import assert_like_oracle, rsync_succeeded

pytestmark = pytest.mark.usefixtures("worker")

KINDS = ["file", "empty dir", "dir with content", "symlink to file", "symlink to dir", "hard link", "fifo"]


def make(path: Path, kind: str) -> None:
    """Put an entry of `kind` at `path` (its siblings `other` and `otherdir` exist)."""
    if kind == "file":
        path.write_bytes(os.urandom(70_000))
    elif kind == "empty dir":
        path.mkdir()
    elif kind == "dir with content":
        (path / "sub").mkdir(parents=True)
        (path / "sub" / "inner").write_bytes(b"inner")
        (path / "top").write_bytes(b"top")
    elif kind == "symlink to file":
        os.symlink("other", path)
    elif kind == "symlink to dir":
        os.symlink("otherdir", path)
    elif kind == "hard link":
        os.link(path.parent / "other", path)
    elif kind == "fifo":
        os.mkfifo(path)


def tree(root: Path, depth: str, kind: str) -> Path:
    parent = root / depth if depth else root
    parent.mkdir(parents=True, exist_ok=True)
    (parent / "other").write_bytes(b"other file")
    (parent / "otherdir").mkdir(exist_ok=True)
    make(parent / "x", kind)
    return parent / "x"


def clear(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


CASES = [(old, new) for old in KINDS for new in KINDS if old != new]


@pytest.mark.parametrize("delete", [False, True], ids=["keep", "delete"])
@pytest.mark.parametrize("depth", ["", "d1/d2"], ids=["top", "deep"])
@pytest.mark.parametrize(("old", "new"), CASES, ids=[f"{o}->{n}" for o, n in CASES])
def test_type_change_like_rsync(
    tmp_path: Path, dms_app: Any, store: Any, old: str, new: str, depth: str, delete: bool
) -> None:
    assert RSYNC
    src, ours, theirs = tmp_path / "src", tmp_path / "dms", tmp_path / "rsync"
    flags = ["--delete"] if delete else []
    x = tree(src, depth, old)
    first = dms(dms_app, store, src, ours, specials=True, delete=delete)
    assert first["state"] == "SUCCEEDED", first
    assert subprocess.run([RSYNC, "-aHAXS", *flags, f"{src}/", f"{theirs}/"], capture_output=True).returncode == 0
    clear(x)
    make(x, new)
    theirs_run = subprocess.run([RSYNC, "-aHAXS", *flags, f"{src}/", f"{theirs}/"], capture_output=True, text=True)
    info = dms(dms_app, store, src, ours, specials=True, delete=delete)
    errors = store.errors(info["request_id"], limit=3)
    rsync_ok = rsync_succeeded(theirs_run.returncode, theirs_run.stderr)
    assert rsync_ok == (info["state"] == "SUCCEEDED"), (theirs_run.stderr, info.get("error"), errors)
    assert_like_oracle(src, theirs, ours)
    assert not [p for p in ours.rglob("*") if p.name.endswith(".partial")]


def test_delete_judges_an_excluded_name_by_the_destination_entry_type(tmp_path: Path, dms_app: Any, store: Any) -> None:
    """Found by the property test: the source's `b` is a file the filters exclude, the
    destination's `b` is a directory they include (`+ */`). rsync deletes the directory: an
    excluded source entry is as if absent, and a destination entry is protected only by the
    rules applied to its own type. DMS kept it, because the name was in the source's listing."""
    assert RSYNC
    src, ours, theirs = tmp_path / "src", tmp_path / "dms", tmp_path / "rsync"
    src.mkdir()
    (src / "a").write_bytes(b"kept")
    (src / "b").write_bytes(b"excluded file")
    for dst in (ours, theirs):
        (dst / "b").mkdir(parents=True)
        os.mkfifo(dst / "b" / "a")
    rules = ["--include", "*/", "--include", "a", "--exclude", "*"]
    assert subprocess.run([RSYNC, "-aHAXS", "--delete", *rules, f"{src}/", f"{theirs}/"]).returncode == 0
    info = dms(dms_app, store, src, ours, delete=True, specials=True,
               filters=[("+", "*/"), ("+", "a"), ("-", "*")])  # fmt: skip
    assert info["state"] == "SUCCEEDED", info
    assert sorted(os.listdir(ours)) == sorted(os.listdir(theirs)) == ["a"]
