"""The walker: stable order, records, and what it skips."""

from __future__ import annotations

import os
from pathlib import Path

from dms.model import DirRecord, FileRecord
from dms.walk import Skipped, walk_tree


def test_walk_is_sorted_depth_first_with_sequential_file_ids(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a").write_text("1")
    (tmp_path / "b" / "z").write_text("22")
    (tmp_path / "c").write_text("333")
    (tmp_path / ".c.dms-0123456789.partial").write_text("staging")
    os.symlink("a", tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    entries = list(walk_tree(str(tmp_path)))
    files = [e for e in entries if isinstance(e, FileRecord)]
    assert [(f.file_id, f.relpath, f.size) for f in files] == [(0, "a", 1), (1, "c", 3), (2, "b/z", 2)]
    assert [d.relpath for d in entries if isinstance(d, DirRecord)] == ["", "b"]
    skipped = {s.relpath: s.reason for s in entries if isinstance(s, Skipped)}
    assert set(skipped) == {"link", "fifo"}
    again = list(walk_tree(str(tmp_path)))  # deterministic (atimes move when a directory is read)
    assert [(type(e), getattr(e, "file_id", None), e.relpath) for e in again] == [
        (type(e), getattr(e, "file_id", None), e.relpath) for e in entries
    ]
