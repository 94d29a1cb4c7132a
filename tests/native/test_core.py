"""The compiled wrapper: error mapping, GIL release, chunker and copier through Python."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from dms import native
from dms.errors import IntegrityError, ProtocolError, SourceChangedError


def test_missing_source_is_file_not_found_with_path_and_call(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        native.copy_range(tmp_path / "nope", tmp_path / "out", 0, 10)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == str(tmp_path / "nope")
    assert "stat" in str(info.value)


def test_directory_as_source_is_is_a_directory_error(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError) as info:
        native.copy_range(tmp_path, tmp_path / "out", 0, 1)
    assert info.value.filename == str(tmp_path)
    assert "pread" in str(info.value)


def test_unwritable_destination_is_permission_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"x" * 100)
    # root ignores mode bits, but not a read-only bind of the destination directory
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["mount", "--bind", "-o", "ro", str(ro), str(ro)], capture_output=True).returncode:
            pytest.skip("cannot make a read-only bind mount here")
        try:
            with pytest.raises(OSError) as info:
                native.copy_range(src, ro / "out", 0, 100)
            assert info.value.errno == errno.EROFS
            assert info.value.filename == str(ro / "out")
        finally:
            subprocess.run(["umount", str(ro)], check=True)
    else:
        ro.chmod(0o500)
        with pytest.raises(PermissionError):
            native.copy_range(src, ro / "out", 0, 100)


def test_enospc_from_a_small_tmpfs_is_oserror_28(tmp_path: Path) -> None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        src = tmp_path / "big"
        src.write_bytes(os.urandom(512 * 1024))
        with pytest.raises(OSError) as info:
            native.copy_range(src, mnt / "big.part", 0, 512 * 1024)
        assert info.value.errno == errno.ENOSPC
        assert "pwrite" in str(info.value)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_bad_arguments_are_value_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        native.FileChunker(0)
    with pytest.raises(ValueError, match="copy method"):
        native.copy_range(tmp_path / "a", tmp_path / "b", 0, 1, method="teleport")
    with pytest.raises(ValueError, match="digest"):
        native.Verifier([native.VerifySpec(str(tmp_path), 0, 1, "not-hex")])
    with pytest.raises(ValueError, match="outside the file size"):
        native.UnitCopier([native.CopySpec("a", "b", 5, 10, 10, 0, True)])


def test_digest_mismatch_is_integrity_error_value(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"hello world")
    good = native.digest_bytes(b"hello world")
    assert native.hash_range(f, 0, 11) == good
    outcomes = native.Verifier([native.VerifySpec(str(f), 0, 11, good), native.VerifySpec(str(f), 0, 5, good)]).step()
    assert outcomes[0] == (0, good, None)
    assert outcomes[1][1] is None and isinstance(outcomes[1][2], IntegrityError)


def test_copier_reports_per_piece_errors_and_continues(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_bytes(os.urandom(3000))
    st = good.stat()
    specs = [
        native.CopySpec(str(tmp_path / "missing"), str(tmp_path / "m.part"), 0, 10, 10, 0),
        native.CopySpec(str(good), str(tmp_path / "g.part"), 0, 3000, 3000, st.st_mtime_ns),
        native.CopySpec(str(good), str(tmp_path / "c.part"), 0, 3000, 3000, st.st_mtime_ns + 1),  # "changed"
    ]
    copier = native.UnitCopier(specs, buffer_size=512)
    outcomes = []
    while not copier.done:
        outcomes += copier.step(1000)  # slices smaller than a piece
    assert [o[0] for o in outcomes] == [0, 1, 2]
    assert isinstance(outcomes[0][2], FileNotFoundError) and outcomes[0][2].filename == str(tmp_path / "missing")
    assert outcomes[1][1] == native.digest_bytes(good.read_bytes())
    assert isinstance(outcomes[2][2], SourceChangedError)
    assert (tmp_path / "g.part").read_bytes() == good.read_bytes()
    assert copier.bytes_moved == 3000


@pytest.mark.parametrize("method", ["readwrite", "copy_file_range"])
def test_copy_methods_give_identical_bytes_and_digest(tmp_path: Path, method: str) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "src").write_bytes(data)
    digest = native.copy_range(tmp_path / "src", tmp_path / "dst", 0, len(data), method=method)
    assert digest == native.digest_bytes(data)
    assert (tmp_path / "dst").read_bytes() == data


@pytest.mark.parametrize("mapped", [True, False])
def test_hash_range_in_the_page_cache_or_by_pread_gives_the_digest_of_the_bytes(tmp_path: Path, mapped: bool) -> None:
    """Both ways of reading to hash (decision 0020), inside a Python process whose
    faulthandler (pytest's) holds SIGBUS too; a range past the end hashes what is there."""
    data = os.urandom(9 * 1024 * 1024 + 4097)
    (tmp_path / "f").write_bytes(data)
    for offset, length in ((0, len(data)), (4095, 5 * 1024 * 1024), (100, 1000), (len(data) - 300000, 10**9)):
        got = native.hash_range(tmp_path / "f", offset, length, mapped=mapped)
        assert got == native.digest_bytes(data[offset : offset + length]), (offset, length)


def test_chunker_packs_small_files_and_splits_large_ones() -> None:
    chunker = native.FileChunker(100, 100, 3)
    for index, size in enumerate([10, 0, 250, 5]):
        chunker.add(index, size)
    assert chunker.finish() == [[(0, 0, 10), (1, 0, 0)], [(2, 0, 100)], [(2, 100, 100)], [(2, 200, 50), (3, 0, 5)]]
    assert native.FileChunker(64).split(0, 0) == [(0, 0)]


@pytest.mark.timeout(20)
def test_gil_is_released_while_native_code_blocks() -> None:
    """The native query connects to this thread's listener and blocks in recv() for the
    receiver's hello. The main thread then accepts and closes: Python code that
    runs only if the native call released the GIL. Holding it would deadlock (the
    pytest-timeout fails the test); releasing it ends the query with a connection error."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    result: dict[str, BaseException] = {}

    def query() -> None:
        try:
            native.query_up_to_date([("/x", 1, 0, 0o644, None)], "", "127.0.0.1", port, b"k" * 32)
        except BaseException as exc:
            result["error"] = exc

    t = threading.Thread(target=query)
    t.start()
    conn, _ = listener.accept()  # the native side is connected and waits for the receiver's hello
    conn.close()
    listener.close()
    t.join()
    assert isinstance(result.get("error"), ProtocolError), result
    assert "closed the connection" in str(result["error"])


@pytest.mark.timeout(20)
def test_hashing_a_fifo_returns_at_once_rather_than_waiting_for_a_writer(tmp_path: Path) -> None:
    """A source path replaced by a FIFO must not hang a worker: opens never block."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for mapped in (True, False):
        try:
            native.hash_range(fifo, 0, 10, mapped)
        except OSError as exc:
            assert exc.errno == errno.ESPIPE
