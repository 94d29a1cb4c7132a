"""Python face of the C++ transfer core (chunker, sliced copier, verifier, TCP data plane).

The work happens in the compiled module `_core`, with the GIL released around
every blocking call; see docs/architecture.md ("Native core").
"""

from __future__ import annotations

from dms.native._core import (
    DEFAULT_BUFFER_BYTES,
    DEFAULT_SLICE_BYTES,
    FileChunker,
    ScanEntry,
    TcpReceiver,
    UnitCopier,
    UnitSender,
    Verifier,
    copy_range,
    digest_bytes,
    hash_range,
    publish_whole_files,
    query_up_to_date,
    scan_directory,
    sync_filesystem,
)
from dms.native.records import CopySpec, PublishSpec, VerifySpec

__all__ = [
    "DEFAULT_BUFFER_BYTES",
    "DEFAULT_SLICE_BYTES",
    "CopySpec",
    "FileChunker",
    "PublishSpec",
    "ScanEntry",
    "TcpReceiver",
    "UnitCopier",
    "UnitSender",
    "Verifier",
    "VerifySpec",
    "copy_range",
    "digest_bytes",
    "hash_range",
    "publish_whole_files",
    "query_up_to_date",
    "scan_directory",
    "sync_filesystem",
]
