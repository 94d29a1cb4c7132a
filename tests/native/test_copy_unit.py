"""copy_unit: slices, progress between slices, cooperative cancel, per-file errors (real files)."""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
from pathlib import Path

from dms import native
from dms.errors import IntegrityError
from dms.fs.paths import staging_path
from dms.model import FileRecord, SyncParams, UnitPiece
from dms.transfer.unit import copy_unit


def _piece(src: Path, rel: str, file_id: int, offset: int, length: int) -> UnitPiece:
    st = (src / rel).stat()
    return UnitPiece(FileRecord(file_id, rel, st.st_size, st.st_mtime_ns, st.st_atime_ns, 0o644), offset, length)


def test_progress_between_slices_and_cancel_stops_the_unit(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(10 * 1024 * 1024))
    params = SyncParams("cancel-unit", str(src), str(dst))
    reported: list[int] = []
    result = copy_unit(
        params,
        [_piece(src, "big", 0, 0, 10 * 1024 * 1024)],
        cancelled=lambda: len(reported) >= 2,
        slice_bytes=1024 * 1024,
        progress=reported.append,
    )
    assert result.cancelled and result.ok == [] and result.failed == []
    assert reported == [1024 * 1024 - 64 * 1024, 2 * 1024 * 1024 - 64 * 1024]  # first slice pays the open
    assert result.bytes_moved == reported[-1] < 10 * 1024 * 1024


def test_whole_unit_with_a_missing_file(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "a").mkdir(parents=True)
    (src / "a" / "one").write_bytes(b"1" * 5000)
    (src / "two").write_bytes(b"2" * 7)
    pieces = [_piece(src, "a/one", 0, 0, 5000), _piece(src, "two", 1, 0, 7)]
    (src / "two").unlink()
    result = copy_unit(SyncParams("unit", str(src), str(dst)), pieces)
    assert [p.file_id for p in result.ok] == [0] and [f.relpath for f in result.failed] == ["two"]
    assert result.failed[0].errno == 2
    assert Path(staging_path(str(dst / "a" / "one"), "unit")).read_bytes() == b"1" * 5000


def test_whole_files_are_published_by_the_unit_and_the_rest_left_to_finalize(tmp_path: Path) -> None:
    """A file the unit holds whole is verified, gets its mode and times, and is renamed into
    place; a piece of a bigger file, and a file with xattrs to copy, stay staged for finalize."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    (src / "d" / "small").write_bytes(b"s" * 3000)
    (src / "empty").write_bytes(b"")
    (src / "big").write_bytes(b"b" * 10000)
    (src / "tagged").write_bytes(b"t" * 10)
    os.utime(src / "d" / "small", ns=(1_600_000_000_000_000_001, 1_500_000_000_000_000_002))
    small = _piece(src, "d/small", 0, 0, 3000)
    small = UnitPiece(dataclasses.replace(small.file, mode=0o640), 0, 3000)
    tagged = _piece(src, "tagged", 3, 0, 10)
    tagged = UnitPiece(dataclasses.replace(tagged.file, xattrs=(("user.colour", "Ymx1ZQ=="),)), 0, 10)
    pieces = [small, _piece(src, "empty", 1, 0, 0), _piece(src, "big", 2, 0, 4096), tagged]
    params = SyncParams("pub", str(src), str(dst))
    result = copy_unit(params, pieces, may_publish=lambda: True)
    assert sorted(result.published) == [0, 1] and result.failed == []
    assert len(result.ok) == 4  # every piece's digest is still recorded
    st = (dst / "d" / "small").stat()
    assert (dst / "d" / "small").read_bytes() == b"s" * 3000 and stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_mtime_ns == 1_500_000_000_000_000_002
    assert (dst / "empty").read_bytes() == b""
    assert not os.path.lexists(staging_path(str(dst / "d" / "small"), "pub"))
    for name in ("big", "tagged"):  # finalize's work
        assert not (dst / name).exists() and os.path.exists(staging_path(str(dst / name), "pub"))


def test_nothing_is_published_when_the_task_may_not(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "a").write_bytes(b"a" * 100)
    result = copy_unit(SyncParams("nopub", str(src), str(dst)), [_piece(src, "a", 0, 0, 100)],
                       may_publish=lambda: False)  # fmt: skip
    assert result.published == [] and len(result.ok) == 1
    assert not (dst / "a").exists() and os.path.exists(staging_path(str(dst / "a"), "nopub"))


def test_a_file_whose_name_cannot_be_taken_fails_and_its_staging_file_goes(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "a").write_bytes(b"a" * 100)
    (src / "b").write_bytes(b"b" * 100)
    (dst / "a").mkdir(parents=True)  # a non-empty directory where the file goes
    (dst / "a" / "keep").write_bytes(b"k")
    result = copy_unit(SyncParams("blocked", str(src), str(dst)), [_piece(src, "a", 0, 0, 100),
                       _piece(src, "b", 1, 0, 100)], may_publish=lambda: True)  # fmt: skip
    assert result.published == [1] and [p.file_id for p in result.ok] == [1]
    assert [(f.relpath, f.errno) for f in result.failed] == [("a", errno.ENOTEMPTY)]  # rsync: exit 23 too
    assert "cannot delete non-empty directory" in result.failed[0].message
    assert "publish failed" in result.failed[0].message and "/proc/self/fd" not in result.failed[0].message
    assert (dst / "a" / "keep").read_bytes() == b"k" and (dst / "b").read_bytes() == b"b" * 100
    assert not os.path.lexists(staging_path(str(dst / "a"), "blocked"))


def test_corrupted_staged_bytes_are_never_published(tmp_path: Path) -> None:
    """The publisher re-reads what was staged: bytes that differ from the copier's digest fail."""
    staged, final = tmp_path / ".f.partial", tmp_path / "f"
    staged.write_bytes(b"x" * 1000)
    wrong = native.digest_bytes(b"y" * 1000)
    [(index, digest, error)] = native.publish_whole_files(
        [native.PublishSpec(str(staged), str(final), 1000, wrong, 0o644, -1, -1, 0, 0)]
    )
    assert index == 0 and digest is None and isinstance(error, IntegrityError)
    assert not final.exists() and staged.exists()


def test_a_duplicate_run_of_the_unit_publishing_first_is_not_a_failure(tmp_path: Path) -> None:
    """Two runs of one unit (redelivery, a janitor's re-dispatch) interleaved: the other run
    copies and publishes between this run's copy and its publish, so this run finds its
    staging files renamed already. The files are in place with the right bytes: no failure."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}").write_bytes(os.urandom(3000))
    params = SyncParams("dup", str(src), str(dst))
    pieces = [_piece(src, f"f{i}", i, 0, 3000) for i in range(5)]
    other: list[list[int]] = []

    def the_other_run_goes_first() -> bool:
        other.append(copy_unit(params, pieces, may_publish=lambda: True).published)
        return True

    result = copy_unit(params, pieces, may_publish=the_other_run_goes_first)
    assert other == [[0, 1, 2, 3, 4]]
    assert result.failed == [] and sorted(result.published) == [0, 1, 2, 3, 4]
    for i in range(5):
        assert (dst / f"f{i}").read_bytes() == (src / f"f{i}").read_bytes()
    assert [p.name for p in dst.iterdir() if p.name.endswith(".partial")] == []
