"""Finalize a request: verify every chunk, publish each file atomically, set metadata.

A file is renamed into place only when every one of its chunks has a recorded
digest and the staged bytes hash to it again. Until then it exists only under
its staging name, so nothing partial is ever visible under a final name.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from dms import native
from dms.model import DirRecord, FileRecord, SyncParams
from dms.paths import staging_path
from dms.state import FailedPiece, RequestStore

__all__ = ["PublishReport", "publish_request"]

log = logging.getLogger(__name__)

VERIFY_SLICE_BYTES = 64 * 1024 * 1024


@dataclass
class PublishReport:
    published: int = 0
    failed: int = 0
    cancelled: bool = False


def publish_request(
    store: RequestStore, params: SyncParams, file_shards: int, dir_shards: int, cancelled: Callable[[], bool]
) -> PublishReport:
    report = PublishReport()
    chunker = native.FileChunker(params.chunk_size, params.unit_bytes, params.unit_max_files)
    for shard in range(file_shards):
        if cancelled():
            report.cancelled = True
        _publish_shard(store, params, shard, chunker, report)
    if not report.cancelled:
        _apply_dirs(store, params, dir_shards)
        if params.fsync:
            native.sync_filesystem(params.destination)
    return report


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _publish_shard(
    store: RequestStore, params: SyncParams, shard: int, chunker: native.FileChunker, report: PublishReport
) -> None:
    """Verify, then publish, the files of one shard; mark them published in one round trip.

    A file whose staging name is gone but whose final name exists was renamed by an
    earlier run of finalize that stopped before marking it: its final file is
    verified against the recorded digests instead, and counted if it matches.
    """
    rid = params.request_id
    files = store.load_files(rid, shard)
    digests = store.load_digests(rid, shard)
    failed = store.load_failed(rid, shard)
    published = store.published_ids(rid, shard)
    candidates: list[tuple[FileRecord, str, str, bool]] = []  # file, staged, final, already renamed
    verify_specs: list[tuple[str, int, int, str]] = []
    spec_owner: list[int] = []  # verify spec -> index into candidates
    newly_failed: list[FailedPiece] = []
    for f in files:
        if f.file_id in published:
            continue
        final = os.path.join(params.destination, f.relpath)
        staged = staging_path(final, rid)
        if report.cancelled or f.file_id in failed:
            _remove(staged)
            continue
        missing = 0
        specs = []
        renamed = not os.path.lexists(staged) and os.path.isfile(final)
        for offset, length in chunker.split(f.file_id, f.size):
            recorded = digests.get(f"{f.file_id}:{offset}")
            if recorded is None or int(recorded.split(":")[0]) != length:
                missing += 1
            else:
                specs.append((final if renamed else staged, offset, length, recorded.split(":")[1]))
        if missing:
            newly_failed.append(FailedPiece(f.file_id, f.relpath, f"{missing} chunk(s) were never copied"))
            _remove(staged)
            continue
        spec_owner.extend([len(candidates)] * len(specs))
        verify_specs.extend(specs)
        candidates.append((f, staged, final, renamed))
    bad: dict[int, str] = {}
    verifier = native.Verifier(verify_specs)
    while not verifier.done:
        for index, _digest, error in verifier.step(VERIFY_SLICE_BYTES):
            if error is not None:
                bad.setdefault(spec_owner[index], str(error))
    if params.fsync and candidates:
        native.sync_filesystem(params.destination)
    done: list[int] = []
    for i, (f, staged, final, renamed) in enumerate(candidates):
        if i in bad:
            newly_failed.append(FailedPiece(f.file_id, f.relpath, f"verification failed: {bad[i]}"))
            _remove(staged)
            continue
        if not renamed:
            try:
                os.chmod(staged, f.mode)
                os.utime(staged, ns=(f.atime_ns, f.mtime_ns))
                os.rename(staged, final)
            except OSError as exc:
                newly_failed.append(FailedPiece(f.file_id, f.relpath, f"publish failed: {exc}", exc.errno))
                _remove(staged)
                continue
        done.append(f.file_id)
    report.published += store.mark_published(rid, done)
    report.failed += store.fail_files(rid, newly_failed)


def _apply_dirs(store: RequestStore, params: SyncParams, dir_shards: int) -> None:
    """Create empty directories and set modes and times, deepest first, so setting
    a child's times never disturbs its parent's mtime afterwards."""
    dirs: list[DirRecord] = []
    for shard in range(dir_shards):
        dirs.extend(store.load_dirs(params.request_id, shard))
    dirs.sort(key=lambda d: d.relpath.count("/") + (1 if d.relpath else 0), reverse=True)
    for d in dirs:
        path = os.path.join(params.destination, d.relpath) if d.relpath else params.destination
        try:
            os.makedirs(path, exist_ok=True)
            os.chmod(path, d.mode)
            os.utime(path, ns=(d.atime_ns, d.mtime_ns))
        except OSError as exc:
            store.add_error(params.request_id, d.relpath or ".", f"directory metadata: {exc}", exc.errno)
            log.warning("request %s: directory %s: %s", params.request_id, d.relpath or ".", exc)
