"""Finalize a request: verify every chunk, publish each file atomically, set metadata.

A file is renamed into place only when every one of its chunks has a recorded
digest and the staged bytes hash to it again. Until then it exists only under
its staging name, so nothing partial is ever visible under a final name.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import errno
import logging
import os
import stat
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass

from dms import native
from dms.fs.beneath import DIR_FLAGS, Beneath, destination_beneath, rename_replacing
from dms.fs.filters import RuleSet
from dms.fs.names import printable, shown
from dms.fs.paths import is_staging_name, staged_by, staging_path
from dms.model import DirRecord, FailedPiece, FileRecord, LinkRecord, SyncParams, Xattrs
from dms.plan import itemize
from dms.plan.diff import link_in_place, special_mode
from dms.state.requests import RequestStore

__all__ = ["PublishReport", "publish_request"]

log = logging.getLogger(__name__)

VERIFY_SLICE_BYTES = native.DEFAULT_SLICE_BYTES
#: Threads verifying staged chunks in finalize: one per core, at most 4.
VERIFY_THREADS = int(os.environ.get("DMS_VERIFY_THREADS", str(min(4, os.cpu_count() or 1))))


@dataclass
class PublishReport:
    published: int = 0
    failed: int = 0
    cancelled: bool = False
    deleted: int = 0
    delete_limited: int = 0  # deletions not done because of --max-delete


def publish_request(
    store: RequestStore,
    params: SyncParams,
    file_shards: int,
    dir_shards: int,
    cancelled: Callable[[], bool],
    link_shards: int = 0,
    name_shards: int = 0,
) -> PublishReport:
    """Files, then links (they may point at files), then deletions, then directories
    (deepest first, so nothing changes a directory's mtime after it is set)."""
    report = PublishReport()
    if params.dry_run:  # nothing is written: only what --delete would remove is reported
        if params.delete:
            delete_extraneous(store, params, name_shards, report)
        return report
    chunker = native.FileChunker(params.chunk_size, params.unit_bytes, params.unit_max_files)
    for shard in store.shards_with_work(params.request_id, file_shards):  # files their transfers published: none
        if cancelled():
            report.cancelled = True
        _publish_shard(store, params, shard, chunker, report)
    if not report.cancelled:
        for shard in range(link_shards):
            _apply_links(store, params, store.load_links(params.request_id, shard))
        if params.delete:
            delete_extraneous(store, params, name_shards, report)
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
    files, digests = store.finalize_work(rid, shard)
    published = store.published_ids(rid, shard)
    with destination_beneath(params) as beneath:  # every path goes through directories opened without symlinks
        shard_run = _ShardPublish(store, params, shard, chunker, report, beneath, digests)
        candidates = shard_run.candidates(files, published)
        bad = _verify_in_parallel(shard_run.verify_specs, shard_run.spec_owner)
        if params.fsync and candidates:
            native.sync_filesystem(params.destination)
        shard_run.publish(candidates, bad)


def _verify_in_parallel(specs: list[native.VerifySpec], owner: list[int]) -> dict[int, str]:
    """Hash every staged chunk again and compare; {owner index: first error}.

    The chunks are dealt out by owner (file) to up to VERIFY_THREADS native Verifiers,
    stepped in threads (Verifier.step releases the GIL). Re-reading staged bytes from the
    page cache and hashing them is CPU work, and in one thread the longest serial step of a
    large-file sync (figures in decision 0024)."""
    threads = max(1, min(VERIFY_THREADS, len(set(owner))))
    groups: list[tuple[list[native.VerifySpec], list[int]]] = [([], []) for _ in range(threads)]
    for spec, who in zip(specs, owner, strict=True):
        group = groups[who % threads]
        group[0].append(spec)
        group[1].append(who)

    def run(group: tuple[list[native.VerifySpec], list[int]]) -> dict[int, str]:
        found: dict[int, str] = {}
        verifier = native.Verifier(group[0])
        while not verifier.done:
            for index, _digest, error in verifier.step(VERIFY_SLICE_BYTES):
                if error is not None:
                    found.setdefault(group[1][index], str(error))
        return found

    if threads == 1:
        return run(groups[0])
    bad: dict[int, str] = {}
    with concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="dms-verify") as pool:
        for found in pool.map(run, groups):
            bad.update(found)
    return bad


class _ShardPublish:
    """One shard's files through finalize: which can be published (every chunk recorded),
    what to verify, then the renames; failures and forgotten digests are recorded once."""

    def __init__(self, store: RequestStore, params: SyncParams, shard: int, chunker: native.FileChunker,
                 report: PublishReport, beneath: Beneath, digests: dict[str, str]) -> None:  # fmt: skip
        self.store, self.params, self.shard, self.chunker = store, params, shard, chunker
        self.report, self.beneath = report, beneath
        self.digests = digests
        self.failed = store.load_failed(params.request_id, shard)
        self.verify_specs: list[native.VerifySpec] = []
        self.spec_owner: list[int] = []  # verify spec -> index into the candidates
        self.newly_failed: list[FailedPiece] = []
        self.forget: list[str] = []  # digests of staging files removed here: resume must not count on them

    def forget_chunks(self, f: FileRecord) -> None:
        self.forget.extend(f"{f.file_id}:{offset}" for offset, _ in self.chunker.split(f.file_id, f.size))

    def discard(self, f: FileRecord, staged: str) -> None:
        _remove(staged)
        self.forget_chunks(f)

    def candidates(self, files: list[FileRecord], published: Container[int]) -> list[tuple[FileRecord, str, str, bool]]:
        """(file, staged, final, already renamed) of each file whose chunks are all recorded;
        their chunks are queued for verification."""
        found: list[tuple[FileRecord, str, str, bool]] = []
        cancelled = self.report.cancelled
        for f in files:
            if f.file_id in published or (f.file_id in self.failed and not cancelled):
                continue  # a failed file's staged chunks stay for `resume` (docs/operations.md, "Resume")
            try:
                final = self.beneath.path(f.relpath, create=False)
            except OSError as exc:  # nothing is written there
                if not cancelled:
                    self.newly_failed.append(FailedPiece(f.file_id, f.relpath, f"publish refused: {exc.strerror}",
                                                         exc.errno))  # fmt: skip
                if exc.errno == errno.ENOENT:  # its directory is gone, and its staged chunks with it
                    self.forget_chunks(f)
                continue
            staged = staging_path(final, self.params.request_id)
            if cancelled:
                self.discard(f, staged)
                continue
            renamed = not os.path.lexists(staged) and os.path.isfile(final)
            specs = self.chunk_specs(f, final if renamed else staged)
            if specs is None:
                continue  # what was staged stays for `resume`
            self.spec_owner.extend([len(found)] * len(specs))
            self.verify_specs.extend(specs)
            found.append((f, staged, final, renamed))
        return found

    def chunk_specs(self, f: FileRecord, path: str) -> list[native.VerifySpec] | None:
        """What to verify of `f` at `path`: each chunk against its recorded digest; None
        (and `f` failed) when some chunk was never copied."""
        specs, missing = [], 0
        for offset, length in self.chunker.split(f.file_id, f.size):
            recorded = self.digests.get(f"{f.file_id}:{offset}")
            if recorded is None or int(recorded.split(":")[0]) != length:
                missing += 1
            else:
                specs.append(native.VerifySpec(path, offset, length, recorded.split(":")[1]))
        if missing:
            self.newly_failed.append(FailedPiece(f.file_id, f.relpath, f"{missing} chunk(s) were never copied"))
            return None
        return specs

    def publish(self, candidates: list[tuple[FileRecord, str, str, bool]], bad: dict[int, str]) -> None:
        """Rename each verified file into place with its metadata set on what was verified;
        then mark, fail and forget in one round trip each."""
        rid = self.params.request_id
        done: list[int] = []
        for i, (f, staged, final, renamed) in enumerate(candidates):
            if i in bad:
                self.newly_failed.append(FailedPiece(f.file_id, f.relpath, f"verification failed: {bad[i]}"))
                self.discard(f, staged)
                continue
            if not renamed:
                try:
                    self.rename_verified(f, staged, final)
                except OSError as exc:
                    self.newly_failed.append(FailedPiece(f.file_id, f.relpath, f"publish failed: {exc}", exc.errno))
                    self.discard(f, staged)
                    continue
            done.append(f.file_id)
        self.report.published += self.store.mark_published(rid, done)
        self.report.failed += self.store.fail_files(rid, [self.beneath.readable(f) for f in self.newly_failed])
        self.store.forget_digests(rid, self.shard, self.forget)

    def rename_verified(self, f: FileRecord, staged: str, final: str) -> None:
        fd = os.open(staged, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)  # metadata on what was verified
        try:
            apply_owner_and_xattrs(fd, f.uid, f.gid, f.xattrs, self.params.xattrs)
            os.chmod(fd, f.mode)
            os.utime(fd, ns=(f.atime_ns, f.mtime_ns))
        finally:
            os.close(fd)
        rename_replacing(staged, final, self.params.delete, shown(f.relpath))


def _apply_dirs(store: RequestStore, params: SyncParams, dir_shards: int) -> None:
    """Create empty directories and set modes and times, deepest first, so setting
    a child's times never disturbs its parent's mtime afterwards.

    What already matches is left alone, as rsync does: a chown, chmod or utime that
    changes nothing still changes the inode's ctime, and each such inode is then
    written back to disk (a no-change re-sync of 500 directories dirtied all 500)."""
    dirs: list[DirRecord] = []
    for shard in range(dir_shards):
        dirs.extend(store.load_dirs(params.request_id, shard))
    dirs.sort(key=lambda d: d.relpath.count("/") + (1 if d.relpath else 0), reverse=True)
    with destination_beneath(params) as beneath:
        for d in dirs:
            try:
                fd = beneath.dir_fd(d.relpath)  # created if missing; never a symlink swapped in
                st = os.fstat(fd)
                apply_owner_and_xattrs(fd, d.uid, d.gid, d.xattrs, params.xattrs, current=st)
                if stat.S_IMODE(st.st_mode) != d.mode:
                    os.chmod(fd, d.mode)
                if st.st_mtime_ns != d.mtime_ns:  # atime alone is not worth an inode write: any
                    os.utime(fd, ns=(d.atime_ns, d.mtime_ns))  # listing of the directory moves it
            except OSError as exc:
                store.add_error(params.request_id, d.relpath or ".",
                                f"directory metadata: {beneath.readable_text(str(exc))}", exc.errno)  # fmt: skip
                shown_dir = shown(d.relpath or ".")
                log.warning("request %s: directory %s: %s", params.request_id, shown_dir, printable(str(exc)))


def apply_owner_and_xattrs(
    target: str | int, uid: int, gid: int, xattrs: Xattrs, with_xattrs: bool, current: os.stat_result | None = None
) -> None:
    """Owner when running as root (rsync -o -g needs root too); extended attributes where the
    destination supports them (an unsupported or forbidden one is logged, not fatal).
    `target` is an open descriptor, or a path whose last component is not followed.
    With `current` (target's stat), an owner that matches is not set again; an attribute
    whose value matches never is (either would change the inode's ctime for nothing)."""
    same_owner = current is not None and (current.st_uid, current.st_gid) == (uid, gid)
    if os.geteuid() == 0 and uid >= 0 and not same_owner:
        if isinstance(target, int):
            os.chown(target, uid, gid)
        else:
            os.lchown(target, uid, gid)
    if not with_xattrs:
        return
    follow = isinstance(target, int)  # a descriptor has nothing to follow; a path is never followed
    wanted_names = {name for name, _ in xattrs}
    with contextlib.suppress(OSError):
        for name in os.listxattr(target, follow_symlinks=follow):
            if name not in wanted_names:  # the source has no such attribute (any more): rsync -X removes it
                try:
                    os.removexattr(target, name, follow_symlinks=follow)
                except OSError as exc:
                    log.warning("%s: extended attribute %s not removed: %s", shown(str(target)), name, exc.strerror)
    for name, value in xattrs:
        wanted = base64.b64decode(value)
        with contextlib.suppress(OSError):
            if os.getxattr(target, name, follow_symlinks=follow) == wanted:
                continue
        try:
            os.setxattr(target, name, wanted, follow_symlinks=follow)
        except OSError as exc:
            log.warning("%s: extended attribute %s not set: %s", shown(str(target)), name, exc.strerror)


def _apply_links(store: RequestStore, params: SyncParams, links: list[LinkRecord]) -> None:
    """Symbolic links as links (their target is text, never followed); hard links as a
    second name of the file already published under `target`. Each replaces what is
    at its name atomically (link under a staging name, then rename)."""
    rid = params.request_id
    root = os.geteuid() == 0
    with destination_beneath(params) as beneath:
        for link in links:
            try:
                final = beneath.path(link.relpath)  # its directory, reached without following a symlink
                staged = staging_path(final, rid)
                try:
                    _apply_link(link, final, staged, params, beneath, root)
                except BaseException:
                    _remove(staged)  # never left behind, whatever failed
                    raise
            except OSError as exc:
                what = {"sym": "symbolic link", "hard": "hard link", "special": "special file"}[link.kind]
                store.add_error(rid, link.relpath, f"{what}: {beneath.readable_text(str(exc))}", exc.errno)
                store.add_count(rid, "files_failed", 1)  # the request must not claim success
                log.warning("request %s: link %s: %s", rid, shown(link.relpath), printable(str(exc)))


def _apply_link(link: LinkRecord, final: str, staged: str, params: SyncParams, beneath: Beneath, root: bool) -> None:
    """Publish one symbolic link, special file or hard link at `final` (a Beneath path).

    What already matches is left alone (target, owner, times), so a re-sync changes no
    inode's ctime for nothing, as rsync does; anything else is made under `staged` and
    renamed over it (a directory in the way is cleared as for files: rename_replacing)."""
    try:
        here: os.stat_result | None = os.lstat(final)
    except FileNotFoundError:
        here = None
    shown_rel = shown(link.relpath)
    first = beneath.path(link.target, create=False) if link.kind == "hard" else ""
    if not link_in_place(link, final, here, first):
        _remove(staged)
        if link.kind == "hard":
            os.link(first, staged, follow_symlinks=False)
        elif link.kind == "sym":
            os.symlink(link.target, staged)
        else:
            os.mknod(staged, *special_mode(link))
        rename_replacing(staged, final, params.delete, shown_rel)
        here = os.lstat(final)
    if link.kind == "hard":
        return  # its owner and times are the first name's (one inode)
    assert here is not None
    if root and link.uid >= 0 and (here.st_uid, here.st_gid) != (link.uid, link.gid):
        os.lchown(final, link.uid, link.gid)
    if here.st_mtime_ns != link.mtime_ns:
        os.utime(final, ns=(link.atime_ns, link.mtime_ns), follow_symlinks=False)


def delete_extraneous(store: RequestStore, params: SyncParams, name_shards: int, report: PublishReport) -> None:
    """--delete: remove destination entries the source directory does not have.

    Only inside directories the source has (so only under the destination root), reached
    and emptied through directory descriptors (Beneath, then `*at` calls), so never through a
    symbolic link, even one swapped in while this runs; never a staging file, never an entry
    a filter rule excludes (protected, as rsync does without --delete-excluded); each one is
    logged. With --max-delete N, deletion stops at N and the request fails saying so. A dry
    run reports instead of deleting.
    """
    rid = params.request_id
    rules = store.rules(params)
    lines: list[str] = []
    beneath = destination_beneath(params)
    try:
        for rel_dir, keep in _directory_listings(store, rid, name_shards):
            if beneath.open_count >= 256:
                beneath.close()  # descriptors reopen on demand
            try:
                fd = beneath.dir_fd(rel_dir, create=False)
                with os.scandir(fd) as it:
                    extra = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in it if e.name not in keep)
            except OSError:
                continue  # missing, or not a real directory of the destination: nothing of ours to delete
            for name, is_dir in extra:
                _delete_entry(store, params, rules, fd, name, rel_dir, is_dir, report, lines)
    finally:
        beneath.close()
    store.add_dryrun(rid, lines)
    store.add_count(rid, "deleted", report.deleted)


def _directory_listings(store: RequestStore, request_id: str, name_shards: int) -> Iterator[tuple[str, set[str]]]:
    """Each source directory with all its names: a big directory's pieces are consecutive
    rows (possibly across shards), merged here."""
    current: str | None = None
    names: set[str] = set()
    for shard in range(name_shards):
        for rel_dir, piece in store.load_names(request_id, shard):
            if rel_dir != current:
                if current is not None:
                    yield current, names
                current, names = rel_dir, set()
            names.update(piece)
    if current is not None:
        yield current, names


def _delete_entry(
    store: RequestStore,
    params: SyncParams,
    rules: RuleSet,
    parent: int,
    name: str,
    rel_dir: str,
    is_dir: bool,
    report: PublishReport,
    lines: list[str],
    inside_extra: bool = False,
) -> bool:
    """Delete one extraneous entry below the directory descriptor `parent` (a directory depth
    first); True if it is gone. `inside_extra`: `parent` is itself being deleted.

    As in rsync, an entry a filter rule excludes is protected, and so is every
    directory that still holds a protected entry."""
    rel = f"{rel_dir}/{name}" if rel_dir else name
    if is_staging_name(name):
        # Another request's staging file is never touched. This request's own, inside a directory
        # the source no longer has, is a leftover of an earlier run (the directory was moved
        # away meanwhile): it goes with its directory, uncounted. Elsewhere it is kept for resume.
        if not (inside_extra and not is_dir and staged_by(name, params.request_id)) or params.dry_run:
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=parent)
        return True
    if rules and rules.excluded(rel, is_dir):
        return False
    if is_dir:
        empty = True
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=parent)  # never follows a symlink swapped in
        except OSError as exc:
            store.add_error(params.request_id, rel, f"delete: {exc}", exc.errno)
            return False
        try:
            with os.scandir(fd) as it:
                children = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in it)
            for child, child_is_dir in children:
                gone = _delete_entry(store, params, rules, fd, child, rel, child_is_dir, report, lines, True)
                empty = empty and gone
        except OSError as exc:
            store.add_error(params.request_id, rel, f"delete: {exc}", exc.errno)
            return False
        finally:
            os.close(fd)
        if not empty:
            return False
    if 0 <= params.max_delete <= report.deleted:
        report.delete_limited += 1
        return False
    report.deleted += 1
    shown_rel = shown(rel) + ("/" if is_dir else "")
    if params.itemize:
        lines.append(itemize.deleting(rel, is_dir))
    elif params.dry_run:
        lines.append(f"delete {shown_rel}")
    if params.dry_run:
        return True
    try:
        if is_dir:
            os.rmdir(name, dir_fd=parent)  # its contents are gone already
        else:
            os.unlink(name, dir_fd=parent)
    except OSError as exc:
        store.add_error(params.request_id, rel, f"delete: {exc}", exc.errno)
        return False
    log.info("request %s: deleted %s", params.request_id, shown_rel)
    store.log_event(params.request_id, "deleted", path=rel + ("/" if is_dir else ""))
    return True
