"""copy_unit: slices, progress between slices, cooperative cancel, per-file errors (real files)."""

from __future__ import annotations

import os
from pathlib import Path

from dms.copying import copy_unit
from dms.model import FileRecord, SyncParams, UnitPiece
from dms.paths import staging_path


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
