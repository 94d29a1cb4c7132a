"""Typed surface of the compiled dms.native._core module."""

from collections.abc import Iterable
from os import PathLike

from dms.native.records import CopySpec, PublishSpec, VerifySpec

_Path = str | bytes | PathLike[str] | PathLike[bytes]
Outcome = tuple[int, str | None, BaseException | None]

DEFAULT_SLICE_BYTES: int
DEFAULT_BUFFER_BYTES: int

class FileChunker:
    def __init__(self, chunk_size: int, unit_bytes: int = ..., unit_max_pieces: int = ...) -> None: ...
    def split(self, file_index: int, size: int) -> list[tuple[int, int]]: ...
    def add(self, file_index: int, size: int) -> None: ...
    def take_ready(self) -> list[list[tuple[int, int, int]]]: ...
    def finish(self) -> list[list[tuple[int, int, int]]]: ...

class _Sliced:
    def step(self, max_bytes: int = ...) -> list[Outcome]: ...

class UnitCopier(_Sliced):
    def __init__(
        self,
        specs: Iterable[CopySpec],
        method: str = ...,
        buffer_size: int = ...,
    ) -> None: ...
    @property
    def done(self) -> bool: ...
    @property
    def bytes_moved(self) -> int: ...
    @property
    def method(self) -> str: ...

class UnitSender(_Sliced):
    def __init__(
        self,
        specs: Iterable[CopySpec],
        bind_address: str,
        host: str,
        port: int,
        secret: bytes,
        method: str = ...,
        buffer_size: int = ...,
        timeout_ms: int = ...,
        window: int = ...,
    ) -> None: ...
    @property
    def done(self) -> bool: ...
    @property
    def bytes_moved(self) -> int: ...
    @property
    def local_address(self) -> str: ...
    def corrupt_in_flight(self, every: int) -> None: ...

def query_up_to_date(
    entries: Iterable[tuple[_Path, int, int, int, str | None]],
    bind_address: str,
    host: str,
    port: int,
    secret: bytes,
    checksum: bool = ...,
    timeout_ms: int = ...,
) -> list[bool]: ...

class TcpReceiver:
    def __init__(
        self,
        listen: Iterable[tuple[str, int]],
        roots: Iterable[_Path],
        secret: bytes,
        max_connections: int = ...,
        handshake_timeout_ms: int = ...,
        idle_timeout_ms: int = ...,
        buffer_size: int = ...,
        previous_secret: bytes = ...,
    ) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    @property
    def addresses(self) -> list[str]: ...
    def events(self) -> list[tuple[int, str]]: ...
    def stats(self) -> dict[str, int]: ...

class Verifier(_Sliced):
    def __init__(self, specs: Iterable[VerifySpec], buffer_size: int = ...) -> None: ...
    @property
    def done(self) -> bool: ...

def copy_range(src: _Path, dst: _Path, offset: int, length: int, method: str = ...) -> str: ...
def hash_range(path: _Path, offset: int, length: int, mapped: bool = True) -> str: ...
def digest_bytes(data: bytes | bytearray | memoryview) -> str: ...
def publish_whole_files(
    specs: Iterable[PublishSpec],
    sync_path: _Path | None = ...,
    buffer_size: int = ...,
) -> list[Outcome]: ...

class ScanEntry:
    name: str
    err: int
    mode: int
    uid: int
    gid: int
    size: int
    blocks: int
    nlink: int
    dev: int
    ino: int
    rdev: int
    mtime_ns: int
    atime_ns: int
    up_to_date: bool

def scan_directory(path: _Path, dest: _Path | None = ..., xattrs: bool = ...) -> tuple[int, list[ScanEntry]]: ...
def sync_filesystem(path: _Path) -> None: ...
