"""Names are bytes: any name Linux allows is walked, stored, moved, published, deleted and
shown (in one escaped form, dms.fs.names) like any other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dms.fs.names import shown, unshown
from tests.integration.test_rsync_semantics import dms, rsync
from tests.services import RedisServer
from tests.trees import MIB, assert_like_oracle, write_unique

pytestmark = pytest.mark.usefixtures("worker")

#: What Linux allows in a name and a UTF-8 decoder does not: every one of these once failed
#: a sync, or could break a log line.
ODD_NAMES = [
    b"\xff\xfe latin-1 \xe9",
    b"new\nline",
    b"tab\there",
    b"-leading-dash",
    b"--delete",
    b"back\\slash",
    b"x" * 255,
    b"\xe6\x97\xa5\xe6\x9c\xac",  # valid UTF-8
    b"trailing space ",
    b"\x01\x7f control",
]


def build_odd_tree(root: Path) -> None:
    """Odd names as files (first and last of small units), as a chunked file, as directories,
    as symlinks (name and target) and as hard links."""
    b = os.fsencode(root)
    os.makedirs(b, exist_ok=True)
    for i, name in enumerate(ODD_NAMES):
        with open(os.path.join(b, name), "wb") as f:
            f.write(name * (i + 1))
    os.mkdir(os.path.join(b, b"dir \xfe"))
    write_unique(Path(os.fsdecode(os.path.join(b, b"dir \xfe", b"chunked \x80"))), 3 * MIB + 17, 3)
    os.symlink(b"target \xff", os.path.join(b, b"link \xfd"))
    os.link(os.path.join(b, ODD_NAMES[0]), os.path.join(b, b"dir \xfe", b"hard \xfc"))


def test_odd_names_sync_like_rsync_across_unit_and_chunk_boundaries(tmp_path: Path, dms_app: Any, store: Any) -> None:
    src = tmp_path / "src"
    build_odd_tree(src)
    ours, theirs = tmp_path / "dms", tmp_path / "rsync"
    # units of 2 files, chunks of 1 MiB: every odd name is first or last in a unit once
    info = dms(dms_app, store, src, ours, chunk_size=MIB, parallelism=2)
    assert info["state"] == "SUCCEEDED", info
    assert rsync(src, theirs).returncode == 0
    assert_like_oracle(src, theirs, ours)
    again = dms(dms_app, store, src, ours, chunk_size=MIB)
    assert again["state"] == "SUCCEEDED" and int(again["files_done"]) == 0, again


def test_odd_names_are_deleted_and_shown_escaped(tmp_path: Path, dms_app: Any, store: Any) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "kept").write_text("k")
    dst.mkdir()
    extra = os.path.join(os.fsencode(dst), b"stale \xff\nname")
    with open(extra, "wb") as f:
        f.write(b"old")
    info = dms(dms_app, store, src, dst, delete=True)
    assert info["state"] == "SUCCEEDED", info
    assert not os.path.lexists(extra)
    events = store.events(info["request_id"])
    deleted = [e["path"] for e in events if e.get("event") == "deleted"]
    assert deleted == ["stale \\xff\\x0aname"], deleted


def test_a_failed_odd_name_is_named_in_one_escaped_line(
    tmp_path: Path, redis_server: RedisServer, dms_app: Any, store: Any
) -> None:
    """A destination entry DMS must not replace (a directory holding a file where the source
    has a file, without --delete) fails that file, and the hard link to it: names, paths and
    error texts appear escaped, on one line each, with no descriptor path (/proc/self/fd) and
    no Python surrogate escape in sight; the destination path itself is odd too."""
    src = tmp_path / "src"
    dst = os.path.join(os.fsencode(tmp_path), b"dst \xff\nx")
    src.mkdir()
    name = b"bad \xff\nname"
    with open(os.path.join(os.fsencode(src), name), "wb") as f:
        f.write(b"x")
    os.link(os.path.join(os.fsencode(src), name), os.path.join(os.fsencode(src), b"hard \xfe"))
    os.makedirs(os.path.join(dst, name, b"inner"))
    with open(os.path.join(dst, name, b"inner", b"f"), "wb") as f:
        f.write(b"y")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")} | redis_server.env()
    for extra in (["--json"], []):
        r = subprocess.run([sys.executable.encode(), b"-m", b"dms.cli", b"sync", os.fsencode(src), dst, b"--wait",
                            *(e.encode() for e in extra)], env=env, capture_output=True, timeout=120)  # fmt: skip
        assert r.returncode == 23, r.stderr  # some files failed
        out = r.stdout.decode()  # valid UTF-8: every odd byte is escaped
        assert "/proc/self/fd" not in out and "\\udc" not in out, out
        if extra:
            record = json.loads(out)
            assert sorted(e["path"] for e in record["errors"]) == sorted([shown(name), shown(b"hard \xfe")]), record
            assert unshown(record["params"]["destination"]) == dst
        else:
            assert f"destination  {shown(dst)}" in out.splitlines(), out


def test_shown_form_is_printable_and_reversible() -> None:
    for name in [*ODD_NAMES, b"plain", b"\\x41 is not an escape", bytes(range(1, 256)).replace(b"/", b"")]:
        text = shown(name)
        assert text.isprintable(), text
        assert unshown(text) == name


def _deep_tree(root: Path, depth: int = 24) -> list[bytes]:
    """Directories nested past PATH_MAX (4096 bytes), built with *at calls; returns the names."""
    names = [b"d%02d" % i + b"x" * 200 + (b"\xff" if i % 5 == 0 else b"") for i in range(depth)]
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names:
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        leaf = os.open(b"leaf \xfe", os.O_WRONLY | os.O_CREAT, 0o640, dir_fd=fd)
        os.write(leaf, b"at the bottom" * 1000)
        os.close(leaf)
    finally:
        os.close(fd)
    return names


def _read_deep(root: Path, names: list[bytes]) -> tuple[bytes, int]:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names:
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
        leaf = os.open(b"leaf \xfe", os.O_RDONLY, dir_fd=fd)
        try:
            return os.read(leaf, 1 << 20), os.fstat(leaf).st_mode & 0o777
        finally:
            os.close(leaf)
    finally:
        os.close(fd)


def test_paths_longer_than_path_max_are_synced(tmp_path: Path, dms_app: Any, store: Any) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    names = _deep_tree(src)
    assert len(b"/".join(names)) > 4096
    info = dms(dms_app, store, src, dst)
    assert info["state"] == "SUCCEEDED" and int(info["skipped"]) == 0, info
    assert _read_deep(dst, names) == _read_deep(src, names)
    again = dms(dms_app, store, src, dst)
    assert again["state"] == "SUCCEEDED" and int(again["files_done"]) == 0, again
