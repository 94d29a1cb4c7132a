"""The walker: stable order, records, and what it skips."""

from __future__ import annotations

import os
from pathlib import Path

from dms.fs.filters import RuleSet
from dms.model import DirRecord, FileRecord, LinkRecord
from dms.plan.walk import DirNames, Excluded, Inode, Skipped, UpToDate, walk_tree


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
    assert set(skipped) == {"fifo"} and "special file" in skipped["fifo"]
    assert [(x.relpath, x.kind, x.target) for x in entries if isinstance(x, LinkRecord)] == [("link", "sym", "a")]
    again = list(walk_tree(str(tmp_path)))  # deterministic (atimes move when a directory is read)
    assert [(type(e), getattr(e, "file_id", None), e.relpath) for e in again] == [
        (type(e), getattr(e, "file_id", None), e.relpath) for e in entries
    ]


def test_hard_links_xattrs_sparse_and_listings(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "a").write_text("same inode")
    os.link(tmp_path / "a", tmp_path / "d" / "b")
    os.setxattr(tmp_path / "a", "user.colour", b"blue")
    with open(tmp_path / "sparse", "wb") as f:
        f.truncate(8 << 20)
        f.write(b"x")
    entries = list(walk_tree(str(tmp_path), listings=True))
    files = {f.relpath: f for f in entries if isinstance(f, FileRecord)}
    assert set(files) == {"a", "sparse"}  # the second name of "a" is a link, not a copy
    assert files["a"].xattrs == (("user.colour", "Ymx1ZQ=="),)
    assert files["sparse"].sparse and not files["a"].sparse
    assert files["a"].uid == os.getuid()
    links = [(x.relpath, x.kind, x.target) for x in entries if isinstance(x, LinkRecord)]
    assert links == [("d/b", "hard", "a")]
    names = {n.relpath: n.names for n in entries if isinstance(n, DirNames)}
    assert names == {"": ("a", "d", "sparse"), "d": ("b",)}


def test_filters_exclude_and_prune(tmp_path: Path) -> None:
    for rel in ("src/a.c", "src/a.o", "build/x.c", "docs/keep/k.c", "docs/n.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    rules = RuleSet([("-", "*.o"), ("-", "/build/"), ("+", "*/"), ("+", "*.c"), ("-", "*")])
    entries = list(walk_tree(str(tmp_path), rules))
    files = sorted(f.relpath for f in entries if isinstance(f, FileRecord))
    assert files == ["docs/keep/k.c", "src/a.c"]
    assert sorted(e.relpath for e in entries if isinstance(e, Excluded)) == ["build", "docs/n.txt", "src/a.o"]


def test_quick_check_in_the_walk_matches_rsyncs(tmp_path: Path) -> None:
    """quick_check_into: a single-name file already at the destination (regular, same size,
    mtime to the ns, same mode) is UpToDate; anything else is a FileRecord to copy; a name
    with several links keeps its Inode and says it is current; no destination directory
    means nothing is current."""
    import shutil

    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    (src / "new").mkdir()
    for name in ("same", "other_size", "other_time", "other_mode", "is_dir", "sub/same", "new/x", "linked"):
        (src / name).write_bytes(b"12345")
    os.link(src / "linked", src / "linked2")
    shutil.copytree(src, dst, symlinks=True, copy_function=shutil.copy2)
    shutil.rmtree(dst / "new")
    (dst / "other_size").write_bytes(b"123456")
    os.utime(dst / "other_size", ns=(0, (src / "other_size").stat().st_mtime_ns))
    os.utime(dst / "other_time", ns=(0, (src / "other_time").stat().st_mtime_ns + 1))
    os.chmod(dst / "other_mode", 0o600)
    (dst / "is_dir").unlink()
    (dst / "is_dir").mkdir()
    entries = list(walk_tree(str(src), quick_check_into=str(dst)))
    copy = sorted(e.relpath for e in entries if isinstance(e, FileRecord))
    assert copy == ["is_dir", "new/x", "other_mode", "other_size", "other_time"]
    assert sorted(e.size for e in entries if isinstance(e, UpToDate)) == [5, 5, 5]  # same, sub/same, linked
    assert [(e.relpath, e.target) for e in entries if isinstance(e, LinkRecord)] == [("linked2", "linked")]
    split = list(walk_tree(str(src), quick_check_into=str(dst), hardlinks=False))
    inodes = sorted((i.relpath, i.current) for i in split if isinstance(i, Inode))
    assert inodes == [("linked", True), ("linked2", True)]
    plain = list(walk_tree(str(src)))  # without the check every file is to copy, as before
    assert len([e for e in plain if isinstance(e, FileRecord)]) == 8
