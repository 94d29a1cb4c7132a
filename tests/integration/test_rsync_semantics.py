"""Each rsync rule DMS follows, checked against what `rsync -aHAXS` does with the same tree.

Both tools copy the same source into their own destination (with the same extra
entries planted there first); the two destinations must then agree on every
entry: kind, mode, ns mtime, owner, xattrs, content, symlink target, hard-link
group and sparseness (tests/trees.meta_snapshot). One deliberate difference is
masked: DMS sets symlinks' mtimes to the source's, this machine's rsync leaves
them at the time of the copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dms.cli.render import request_lines
from dms.client.submit import resume, submit, wait
from dms.model import SyncParams
from dms.request import make_params
from dms.sizes import format_size
from tests.conftest import unique_id, wait_for_state
from tests.trees import MIB, assert_like_rsync, build_semantics_tree, meta_snapshot, write_unique

pytestmark = pytest.mark.usefixtures("worker")

RSYNC = shutil.which("rsync")


def rsync(src: Path, dst: Path, *options: str) -> subprocess.CompletedProcess[str]:
    assert RSYNC, "rsync is missing: the README's test command installs it (scripts/install-system-deps.sh)"
    return subprocess.run([RSYNC, "-aHAXS", *options, f"{src}/", f"{dst}/"], capture_output=True, text=True)


def dms(dms_app: Any, store: Any, src: Path, dst: Path, **options: Any) -> dict[str, Any]:
    params = make_params(str(src), str(dst), request_id=unique_id("rs"), **options)
    submit(dms_app, store, params)
    info = wait(store, params.request_id, timeout=120)
    info["request_id"] = params.request_id
    return info  # type: ignore[no-any-return]


def plant_extras(dst: Path) -> None:
    """What a previous, different version of the tree left at the destination."""
    (dst / "stale-dir" / "inner").mkdir(parents=True)
    (dst / "stale-dir" / "inner" / "old.txt").write_text("old")
    (dst / "a").mkdir(parents=True, exist_ok=True)
    (dst / "a" / "stale.o").write_text("object")
    (dst / "stale-file").write_text("gone from the source")
    os.symlink("/etc", dst / "stale-link")
    planted = ["stale-dir/inner/old.txt", "stale-dir/inner", "stale-dir", "a/stale.o", "a", "stale-file", "stale-link"]
    for rel in planted:  # the same times in both destinations: entries a rule protects stay as they are
        os.utime(dst / rel, ns=(1_400_000_000_000_000_000, 1_400_000_000_000_000_000), follow_symlinks=False)


def test_metadata_links_xattrs_sparse_like_rsync(tmp_path: Path, dms_app: Any, store: Any) -> None:
    src = tmp_path / "src"
    build_semantics_tree(src)
    info = dms(dms_app, store, src, tmp_path / "dms", specials=True)
    assert info["state"] == "SUCCEEDED", store.errors(info["request_id"])
    assert rsync(src, tmp_path / "rsync").returncode == 0
    assert_like_rsync(tmp_path / "rsync", tmp_path / "dms")
    got = meta_snapshot(tmp_path / "dms")
    assert got["dirlink"][:2] == ("link", "a") and got["abs-link"][:2] == ("link", "/etc/passwd")
    assert got["a/h2"][-1] == got["a/b/h3"][-1] == got["h1"][-1] == "a/b/h3"  # one inode, three names
    assert got["sparse.img"][-2] is True  # still sparse
    src_snap = meta_snapshot(src)
    assert all(got[k][2] == src_snap[k][2] for k in got if got[k][0] == "link")  # symlink mtimes kept
    # without --specials the fifo is skipped with a logged warning, as rsync --no-D does
    info = dms(dms_app, store, src, tmp_path / "dms-noD")
    assert info["state"] == "SUCCEEDED" and not (tmp_path / "dms-noD" / "fifo").exists()
    assert any(e["event"] == "skipped" and e["path"] == "fifo" for e in store.events(info["request_id"]))
    assert rsync(src, tmp_path / "rsync-noD", "--no-D").returncode == 0
    assert_like_rsync(tmp_path / "rsync-noD", tmp_path / "dms-noD")


def test_resync_with_delete_like_rsync(tmp_path: Path, dms_app: Any, store: Any) -> None:
    src = tmp_path / "src"
    build_semantics_tree(src)
    for dst in (tmp_path / "dms", tmp_path / "rsync"):
        dst.mkdir()
        plant_extras(dst)
    assert dms(dms_app, store, src, tmp_path / "dms", delete=True, specials=True)["state"] == "SUCCEEDED"
    assert rsync(src, tmp_path / "rsync", "--delete").returncode == 0
    assert_like_rsync(tmp_path / "rsync", tmp_path / "dms")
    assert os.path.exists("/etc/passwd")  # the deleted stale-link was not followed
    # change the source: edit, remove, replace a file by a link, add; then re-sync both
    (src / "a" / "f2").write_bytes(b"new content")
    shutil.rmtree(src / "deep")
    os.unlink(src / "file1")
    os.symlink("h1", src / "file1")
    (src / "new.txt").write_text("new")
    info = dms(dms_app, store, src, tmp_path / "dms", delete=True, specials=True)
    assert info["state"] == "SUCCEEDED" and info["deleted"] >= 1
    assert rsync(src, tmp_path / "rsync", "--delete").returncode == 0
    assert (tmp_path / "dms").stat().st_mtime_ns == src.stat().st_mtime_ns  # set last, kept
    assert_like_rsync(tmp_path / "rsync", tmp_path / "dms")
    assert any(e["event"] == "deleted" and e["path"] == "deep/" for e in store.events(info["request_id"]))


def test_max_delete_stops_and_fails(tmp_path: Path, dms_app: Any, store: Any) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "keep").write_text("k")
    dst.mkdir()
    for i in range(5):
        (dst / f"extra{i}").write_text("x")
    info = dms(dms_app, store, src, dst, delete=True, max_delete=2)
    assert info["state"] == "FAILED" and "--max-delete 2 reached: 3 more" in info["error"]
    assert info["end_reason"] == "max_delete", info  # dms-submit exits 25, as rsync does
    assert len([p for p in dst.iterdir() if p.name.startswith("extra")]) == 3
    assert (dst / "keep").read_text() == "k"  # the copy itself still happened, as with rsync


@pytest.mark.parametrize(
    "rules",
    [
        [("-", "*.sh")],
        [("-", "a/")],
        [("+", "*/"), ("+", "f*"), ("-", "*")],
        [("-", "/h1"), ("-", "deep/**/f4"), ("+", "a/***"), ("-", "sp*")],
        [("+", "a/b/"), ("-", "b/"), ("-", "dangling")],
    ],
    ids=["suffix", "dir-only", "include-then-exclude-all", "anchored-and-stars", "dir-vs-anchored"],
)
def test_filters_like_rsync(tmp_path: Path, dms_app: Any, store: Any, rules: list[tuple[str, str]]) -> None:
    src = tmp_path / "src"
    build_semantics_tree(src)
    for dst in (tmp_path / "dms", tmp_path / "rsync"):
        dst.mkdir()
        plant_extras(dst)
    assert dms(dms_app, store, src, tmp_path / "dms", filters=rules, delete=True)["state"] == "SUCCEEDED"
    args = [f"--{'include' if kind == '+' else 'exclude'}={pattern}" for kind, pattern in rules]
    assert rsync(src, tmp_path / "rsync", "--delete", "--no-D", *args).returncode == 0
    assert_like_rsync(tmp_path / "rsync", tmp_path / "dms")


def test_rules_from_files_like_rsync(tmp_path: Path, redis_server: Any) -> None:
    """--include-from/--exclude-from read as rsync reads them (comments, blank lines, "+ "
    and "- " prefixes, stdin as "-"), each file's rules where it stood on the command line
    between --include/--exclude, through the CLI against the same tree."""
    src = tmp_path / "src"
    build_semantics_tree(src)
    keep = tmp_path / "keep.rules"
    keep.write_bytes(b"# the directories, then two files by name\n\n*/\n; another comment\nfile1\r\n- h1\n")
    drop = tmp_path / "drop.rules"
    drop.write_bytes(b"+ sparse.img\n*\n")
    stdin_rules = b"deep/\n"
    for dst in (tmp_path / "dms", tmp_path / "rsync"):
        dst.mkdir()
        plant_extras(dst)
    order = ["--exclude-from=-", "--include=f2", f"--include-from={keep}", f"--exclude-from={drop}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")} | redis_server.env()
    ran = subprocess.run([sys.executable, "-m", "dms.cli", "sync", f"{src}", f"{tmp_path / 'dms'}", "--delete",
                          "--wait", *order], input=stdin_rules, capture_output=True, env=env, timeout=120)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    theirs = subprocess.run([RSYNC or "rsync", "-aHAXS", "--delete", "--no-D", *order, f"{src}/",
                             f"{tmp_path / 'rsync'}/"], input=stdin_rules, capture_output=True)  # fmt: skip
    assert theirs.returncode == 0, theirs.stderr
    assert_like_rsync(tmp_path / "rsync", tmp_path / "dms")
    assert (tmp_path / "dms" / "file1").exists() and not (tmp_path / "dms" / "h1").exists()
    nope = f"--exclude-from={tmp_path / 'nope'}"
    missing = subprocess.run([sys.executable, "-m", "dms.cli", "sync", f"{src}", f"{tmp_path / 'x'}", nope],
                             capture_output=True, text=True, env=env)  # fmt: skip
    assert missing.returncode == 2 and "cannot read the rules file" in missing.stderr, missing.stderr


def test_files_from_like_rsync(tmp_path: Path, redis_server: Any) -> None:
    """--files-from FILE read as rsync reads it: paths relative to the source (a leading "/",
    "./" and ".." resolved away), comments and blank lines skipped, the directories on the way
    made, a listed directory not descended into unless listed as DIR/ (its immediate
    contents), hard links among the listed names kept, what is not listed left alone."""
    src = tmp_path / "src"
    build_semantics_tree(src)
    listed = tmp_path / "list"
    listed.write_bytes(
        b"# only these\n\nfile1\n/a/b/f3.sh\r\ndeep/x/y/\nempty\n./sp ace \xc3\xa9/na\xc3\xafve file\n"
        b"../h1\na/h2\n; and a link\ndangling\ndirlink\n"
    )
    for dst in (tmp_path / "dms", tmp_path / "rsync"):
        dst.mkdir()
        plant_extras(dst)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")} | redis_server.env()
    ran = subprocess.run([sys.executable, "-m", "dms.cli", "sync", f"{src}", f"{tmp_path / 'dms'}", "--wait",
                          f"--files-from={listed}"], capture_output=True, env=env, timeout=120)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    theirs = rsync(src, tmp_path / "rsync", "--no-D", f"--files-from={listed}")
    assert theirs.returncode == 0, theirs.stderr
    assert_like_rsync(tmp_path / "rsync", tmp_path / "dms")
    got = tmp_path / "dms"
    assert (got / "a" / "b" / "f3.sh").exists() and not (got / "a" / "f2").exists()
    assert (got / "deep" / "x" / "y" / "z").is_dir() and not (got / "deep" / "x" / "y" / "z" / "f4").exists()
    assert os.stat(got / "h1").st_ino == os.stat(got / "a" / "h2").st_ino
    # with --delete, what the list does not name is never deleted, however stale
    again = subprocess.run([sys.executable, "-m", "dms.cli", "sync", f"{src}", f"{got}", "--wait", "--delete",
                            f"--files-from={listed}"], capture_output=True, env=env, timeout=120)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert (got / "stale-file").exists() and (got / "stale-dir" / "inner" / "old.txt").exists()
    # a path the source does not have fails the request, naming it, as rsync's link_stat error
    # does (exit 23); "../.." is resolved inside the source, never above it
    upward = tmp_path / "upward"
    upward.write_text("../../etc/passwd\nfile1\n")
    ran = subprocess.run([sys.executable, "-m", "dms.cli", "sync", f"{src}", f"{tmp_path / 'up'}", "--wait",
                          f"--files-from={upward}"], capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    theirs = rsync(src, tmp_path / "rsync-up", f"--files-from={upward}")
    assert ran.returncode == theirs.returncode == 23, (ran.stderr, theirs.stderr)
    assert "etc/passwd: listed in --files-from: No such file or directory" in ran.stdout + ran.stderr
    assert sorted(os.listdir(tmp_path / "up")) == ["file1"]


def _pairs(lines: set[str]) -> set[str]:
    """Itemized lines with each new hard-link pair as one entry: which name of the pair is
    sent and which linked to it is each tool's own choice."""
    out = set(lines)
    for line in lines:
        if line.startswith("hf") and " => " in line:
            name, first = line[12:].split(" => ")
            out -= {line, f">f+++++++++ {first}"}
            out.add(f"new hard-linked pair {sorted([name, first])}")
    return out


def test_itemized_changes_like_rsync_i(tmp_path: Path, dms_app: Any, store: Any) -> None:
    """-i lists each change as rsync -i does (`%i %n`): files sent and why (size, time),
    new files, directories, symlinks and hard links, and what --delete removes; with -n too,
    changing nothing. rsync's lines for attribute-only changes of items left in place
    (`.d..t......` of a directory whose mtime it sets) are not DMS's (dms.plan.itemize)."""
    src = tmp_path / "src"
    build_semantics_tree(src, seed=11)
    first = {"dms": tmp_path / "dms", "rsync": tmp_path / "rsync"}
    assert dms(dms_app, store, src, first["dms"])["state"] == "SUCCEEDED"
    assert rsync(src, first["rsync"], "--no-D").returncode == 0
    (src / "file1").write_bytes(b"longer than before, so the size differs" * 100)
    os.utime(src / "a" / "f2", (1_400_000_000, 1_400_000_000))  # time only (whole seconds: rsync's check)
    (src / "fresh" / "deeper").mkdir(parents=True)
    (src / "fresh" / "deeper" / "new.txt").write_bytes(b"new")
    os.symlink("fresh/deeper/new.txt", src / "new-link")
    os.link(src / "fresh" / "deeper" / "new.txt", src / "fresh" / "deeper" / "twin.txt")
    for dst in first.values():
        (dst / "extraneous.txt").write_bytes(b"goes away")
    ours_dry = dms(dms_app, store, src, first["dms"], itemize=True, delete=True, dry_run=True)
    dry_lines = set(store.dryrun(ours_dry["request_id"]))
    ours = dms(dms_app, store, src, first["dms"], itemize=True, delete=True)
    assert ours["state"] == "SUCCEEDED"
    ran = rsync(src, first["rsync"], "--no-D", "--delete", "-i")
    assert ran.returncode == 0, ran.stderr
    theirs = {line for line in ran.stdout.splitlines() if line[:1] in "><ch*" and line[1:2] in "fdLDS"}
    lines = set(store.dryrun(ours["request_id"]))
    assert _pairs(lines) == _pairs(theirs), (sorted(lines - theirs), sorted(theirs - lines))
    assert dry_lines == lines  # -n -i lists the same, and changed nothing before the real run
    assert ">f.st...... file1" in lines and ">f..t...... a/f2" in lines and "*deleting   extraneous.txt" in lines
    # the changes themselves (the trees are compared with rsync's elsewhere; here rsync makes
    # its hard links after setting directory times, so new directories keep "now" in its copy)
    ours_dst = first["dms"]
    assert (ours_dst / "file1").read_bytes() == (src / "file1").read_bytes()
    assert (ours_dst / "a" / "f2").stat().st_mtime == 1_400_000_000 and not (ours_dst / "extraneous.txt").exists()
    assert os.readlink(ours_dst / "new-link") == "fresh/deeper/new.txt"
    new, twin = (ours_dst / "fresh" / "deeper" / n for n in ("new.txt", "twin.txt"))
    assert new.read_bytes() == b"new" and new.stat().st_ino == twin.stat().st_ino


def test_dry_run_reports_like_rsync_and_changes_nothing(tmp_path: Path, dms_app: Any, store: Any) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    build_semantics_tree(src)
    assert rsync(src, dst).returncode == 0
    (src / "a" / "f2").write_bytes(b"changed")
    (src / "added").write_text("added")
    plant_extras(dst)
    before = meta_snapshot(dst)
    info = dms(dms_app, store, src, dst, dry_run=True, delete=True, specials=True)
    assert info["state"] == "SUCCEEDED"
    assert meta_snapshot(dst) == before
    lines = store.dryrun(info["request_id"])
    copied = {line.split(" ", 1)[1] for line in lines if line.startswith(("copy ", "update "))}
    deleted = {line.split(" ", 1)[1].rstrip("/") for line in lines if line.startswith("delete ")}
    out = rsync(src, dst, "-n", "--delete", "--out-format=%i %n").stdout.splitlines()
    rs_copied = {line.split(" ", 1)[1] for line in out if line.startswith(">f")}
    rs_deleted = {line.split(None, 1)[1].rstrip("/") for line in out if line.startswith("*deleting")}
    assert copied == rs_copied == {"a/f2", "added"}
    assert deleted == rs_deleted == {"stale-dir", "stale-dir/inner", "stale-dir/inner/old.txt", "stale-file",
                                     "stale-link", "a/stale.o"}  # fmt: skip


def test_checksum_compares_content_like_rsync_c(tmp_path: Path, dms_app: Any, store: Any) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"A" * 1000)
    for dst in (tmp_path / "dms", tmp_path / "rsync"):
        dst.mkdir()
        (dst / "f").write_bytes(b"B" * 1000)  # same size and mtime, other content
        st = (src / "f").stat()
        os.utime(dst / "f", ns=(st.st_atime_ns, st.st_mtime_ns))
        os.chmod(dst / "f", st.st_mode)
    assert dms(dms_app, store, src, tmp_path / "dms")["files_uptodate"] == 1  # the quick check is fooled
    assert (tmp_path / "dms" / "f").read_bytes() == b"B" * 1000
    info = dms(dms_app, store, src, tmp_path / "dms", checksum=True)
    assert info["files_done"] == 1 and (tmp_path / "dms" / "f").read_bytes() == b"A" * 1000
    assert rsync(src, tmp_path / "rsync", "-c").returncode == 0
    assert_like_rsync(tmp_path / "rsync", tmp_path / "dms")
    again = dms(dms_app, store, src, tmp_path / "dms", checksum=True)
    assert again["files_uptodate"] == 1 and again["tasks_total"] == 0


def test_interrupted_sync_resumes_moving_only_what_is_missing(
    tmp_path: Path, dms_app: Any, store: Any, start_worker: Any
) -> None:
    """Workers killed mid-way; `resume --force` moves about what was missing, not the tree."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(6):
        write_unique(src / f"big{i}.bin", 16 * MIB, i)
    rid = unique_id("resume")
    q = rid.replace("-", "_")
    params = SyncParams(rid, str(src), str(dst), parallelism=2, chunk_size=2 * MIB, unit_bytes=2 * MIB,
                        control_queue=f"t.ctl.{q}", data_queue=f"t.data.{q}")  # fmt: skip
    start_worker(params.control_queue)
    submit(dms_app, store, params)
    wait_for_state(store, rid, {"TRANSFERRING"})
    mover = start_worker(params.data_queue, concurrency=1)
    deadline = time.monotonic() + 120
    while store.get(rid)["tasks_done"] < 20 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(mover.proc.pid, 9)  # the whole worker, mid-unit
    mover.proc.wait()
    mover.proc = None
    first = store.get(rid)
    assert first["state"] == "TRANSFERRING" and first["tasks_done"] < first["tasks_total"]
    done_before = first["bytes_done"]
    resume(dms_app, store, rid, force=True)
    start_worker(params.data_queue, concurrency=2)
    info = wait(store, rid, timeout=180)
    assert info["state"] == "SUCCEEDED", store.errors(rid)
    for i in range(6):
        assert (dst / f"big{i}.bin").read_bytes() == (src / f"big{i}.bin").read_bytes()
    events = store.events(rid)
    start = max(i for i, e in enumerate(events) if e["event"] == "resumed")
    moved = sum(e["bytes"] for e in events[start:] if e["event"] == "unit done")
    missing = 96 * MIB - done_before
    assert events[start]["carried_files"] >= 1
    assert missing <= moved <= missing + 2 * 2 * MIB, (moved, missing)  # at most the units in flight again
    assert moved < 96 * MIB * 0.85
    assert not [p for p in dst.iterdir() if p.name.endswith(".partial")]
    # the summary says how much of it an earlier run staged, and the end is logged with the
    # files that are in place, not only those finalize itself published
    assert info["bytes_done"] == 96 * MIB and info["bytes_carried"] == 96 * MIB - moved, (info, moved)
    summary = "\n".join(request_lines(rid, info))
    assert f"{format_size(96 * MIB - moved)} of it staged by an earlier run" in summary, summary
    ended = [e for e in events if e["event"] == "ended"][-1]
    assert ended["published"] == 6 and ended["uptodate"] == 0, ended


def test_resubmitting_a_failed_request_with_the_same_id_resumes_it(tmp_path: Path, dms_app: Any, store: Any) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "ok").write_text("fine")
    (src / "blocked").write_text("cannot land")
    dst.mkdir()
    (dst / "blocked").mkdir()  # a non-empty directory where a file must go
    (dst / "blocked" / "x").write_text("x")
    rid = unique_id("again")
    params = make_params(str(src), str(dst), request_id=rid)
    submit(dms_app, store, params)
    assert wait(store, rid, timeout=60)["state"] == "FAILED"
    shutil.rmtree(dst / "blocked")
    submit(dms_app, store, params)  # same id, same paths: a resume, not "id already in use"
    info = wait(store, rid, timeout=60)
    assert info["state"] == "SUCCEEDED" and info["files_uptodate"] == 1 and info["files_done"] == 1
    assert (dst / "blocked").read_text() == "cannot land"
    assert [e["event"] for e in store.events(rid)].count("resumed") == 1


def test_delete_in_a_directory_bigger_than_one_listing_piece(tmp_path: Path, dms_app: Any, store: Any) -> None:
    """A directory's names are stored in pieces of 1,000 (bounded Redis values); --delete
    must still see all of them together and delete only what the source lacks."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "big").mkdir(parents=True)
    for i in range(2500):
        (src / "big" / f"f{i:05d}").touch()
    (dst / "big").mkdir(parents=True)
    for name in ("f00000", "f01500", "f02499", "extra-a", "extra-z"):
        (dst / "big" / name).write_text("old")
    info = dms(dms_app, store, src, dst, delete=True)
    assert info["state"] == "SUCCEEDED" and info["deleted"] == 2
    assert sorted(os.listdir(dst / "big")) == sorted(os.listdir(src / "big"))
