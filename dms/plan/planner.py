"""Turn a source tree into a stored plan: transfer units, and directory, link and listing shards.

Streaming on purpose: records go to Redis a shard or a unit at a time, so the
planner's memory stays bounded by one shard plus the files of the open unit,
whatever the size of the tree. A file's record is written once, in the manifest
of the unit that moves it (no file shard): the unit keeps it for finalize only if
it does not publish the file itself (RequestStore.record_unit).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dms import native
from dms.fs.beneath import Beneath, destination_beneath
from dms.fs.names import shown
from dms.fs.paths import staging_path
from dms.model import DirRecord, FileRecord, LinkRecord, RecordedPiece, SyncParams, UnitPiece
from dms.plan import itemize
from dms.plan.diff import dry_run_leaves_link, native_quick_check, up_to_date
from dms.plan.order import Interleaver
from dms.plan.walk import DirNames, Excluded, Skipped, UpToDate, walk_tree
from dms.state.requests import SHARD, RequestStore

__all__ = ["PlanTotals", "describe_unit", "native_quick_check", "plan_tree", "up_to_date"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanTotals:
    files_total: int
    bytes_total: int
    dirs_total: int
    tasks_total: int
    skipped: int
    files_uptodate: int
    bytes_uptodate: int
    file_shards: int
    dir_shards: int
    links_total: int = 0
    link_shards: int = 0
    name_shards: int = 0
    excluded: int = 0
    listed_missing: int = 0  # paths of the --files-from list that the source does not have

    def as_fields(self) -> dict[str, int]:
        return dict(self.__dict__)


def describe_unit(pieces: list[UnitPiece]) -> str:
    """One line saying what a unit moves, for Flower and logs: a byte range, or a batch of files."""
    from dms.sizes import format_size

    if len(pieces) == 1:
        p = pieces[0]
        return f"{shown(p.file.relpath)} [{p.offset}, +{format_size(p.length)})"
    total = sum(p.length for p in pieces)
    first, last = shown(pieces[0].file.relpath), shown(pieces[-1].file.relpath)
    return f"{len(pieces)} pieces, {format_size(total)}: {first} … {last}"


class _Shards:
    """Buffer records and write them to Redis a shard at a time (bounded memory)."""

    def __init__(self, write: Callable[[int, list[Any]], None]) -> None:
        self.write = write
        self.items: list[Any] = []
        self.count = 0
        self.shards = 0

    def add(self, item: Any) -> None:
        self.items.append(item)
        self.count += 1
        if len(self.items) == SHARD:
            self.flush()

    def flush(self) -> None:
        if self.items:
            self.write(self.shards, self.items)
            self.shards += 1
            self.items = []


def plan_tree(
    store: RequestStore,
    params: SyncParams,
    on_unit: Callable[[int], None] = lambda index: None,
    entries: Iterable[Any] | None = None,
    fence: Callable[[], None] = lambda: None,
) -> PlanTotals:
    """Walk, compare, and write the plan. Each unit is announced (tasks_total) and handed
    to `on_unit` as soon as it is written, so transfers run while the walk goes on.
    `fence` is called before every write: it raises once this run may no longer write
    the plan (dms.state.leases.PlanLease.check)."""
    planner = _Planner(store, params, on_unit, fence)
    quick_check = planner.visible and not params.ignore_times
    if entries is None:  # one serial walk; dms.plan.fanout gives the same entries from subtree tasks
        checked_into = native_quick_check(params)
        entries = walk_tree(params.source, store.rules(params), xattrs=params.xattrs, listings=params.delete,
                            specials=params.specials, quick_check_into=checked_into)  # fmt: skip
        quick_check = quick_check and checked_into is None  # what the walk did not check is checked here
    else:
        quick_check = False  # the walkers did it, and said so with UpToDate
    for found in entries:
        fence()  # a clock read, and a lease renewal every RENEW_SECONDS: up-to-date files write nothing
        if isinstance(found, UpToDate):
            planner.up_to_date(found.size)
        elif isinstance(found, FileRecord):
            if quick_check and up_to_date(found, params):
                planner.up_to_date(found.size)
            else:
                planner.file(found)
        elif isinstance(found, DirRecord):
            planner.directory(found)
        elif isinstance(found, LinkRecord):
            planner.link(found)
        elif isinstance(found, DirNames):
            planner.names.add((found.relpath, found.names))
        elif isinstance(found, Excluded):
            planner.excluded += 1
        elif isinstance(found, Skipped):
            planner.skipped(found)
    totals = planner.finish()
    if params.files_listed:
        totals = dataclasses.replace(totals, listed_missing=_report_missing_listed(store, params))
    return totals


def _report_missing_listed(store: RequestStore, params: SyncParams) -> int:
    """Record an error for each path of the --files-from list the source does not have (as
    rsync's "link_stat failed", exit 23): looked up beneath the source, through no symbolic
    link. Returns how many."""
    missing = 0
    with Beneath(params.source) as source:
        for entry in store.listed_paths(params.request_id):
            path = entry.rstrip("/")
            if not path:
                continue
            parent, name = os.path.split(path)
            try:
                os.lstat(name, dir_fd=source.dir_fd(parent, create=False))
            except OSError as exc:
                missing += 1
                store.add_error(params.request_id, path, f"listed in --files-from: {exc.strerror or exc}", exc.errno)
    return missing


class _Planner:
    """The plan being written: shards of records, units cut by the native chunker and dealt
    out across files, the counts, the dry run's report, and chunks carried over by resume."""

    def __init__(
        self, store: RequestStore, params: SyncParams, on_unit: Callable[[int], None], fence: Callable[[], None]
    ) -> None:
        rid = self.rid = params.request_id
        self.store, self.params, self.on_unit, self.fence = store, params, on_unit, fence

        def fenced(write: Callable[[str, int, Any], None]) -> Callable[[int, list[Any]], None]:
            def write_shard(shard: int, items: list[Any]) -> None:
                fence()
                write(rid, shard, items)

            return write_shard

        self.chunker = native.FileChunker(params.chunk_size, params.unit_bytes, params.unit_max_files)
        self.files_count = 0  # file ids number the files to copy (dense: finalize's shards follow them)
        self.dirs = _Shards(fenced(store.write_dirs))
        self.links = _Shards(fenced(store.write_links))
        self.names = _Shards(fenced(store.write_names))
        self.pending: dict[int, FileRecord] = {}  # files whose last piece is not in a written unit yet
        self.bytes = self.units = self.skips = self.uptodate = self.uptodate_bytes = self.excluded = 0
        self.report: list[str] = []  # dry run
        self.carry = store.load_carry(rid)  # chunks a previous incarnation already staged (resume)
        self.carried: list[RecordedPiece] = []
        self.carried_files: list[FileRecord] = []  # their records, for finalize
        self.order: Interleaver[list[UnitPiece]] = Interleaver(self.new_unit, params.parallelism)  # across files
        # Across clusters the planner cannot see the destination: a serial walk sends every file
        # (the fanned-out walk, the default, asks a destination receiver instead: dms.plan.remote_check).
        self.visible = params.source_cluster == params.destination_cluster
        self.skeleton = _Skeleton(params) if self.visible and not params.dry_run else None

    def up_to_date(self, size: int) -> None:
        self.uptodate += 1
        self.uptodate_bytes += size

    def file(self, found: FileRecord) -> None:
        entry = dataclasses.replace(found, file_id=self.files_count)
        self.files_count += 1
        self.bytes += entry.size
        if self.params.itemize:
            self.note(itemize.file_sent(self.params, entry, self.visible))
        elif self.params.dry_run:
            exists = self.visible and os.path.lexists(os.path.join(self.params.destination, entry.relpath))
            self.note(f"{'update' if exists else 'copy'} {shown(entry.relpath)}")
        if not self.params.dry_run and not self.carried_over(entry):
            self.pending[entry.file_id] = entry
            self.chunker.add(entry.file_id, entry.size)
            self.write_units(self.chunker.take_ready())

    def carried_over(self, entry: FileRecord) -> bool:
        """Resume: chunks staged and recorded by the previous run count as done (finalize
        re-verifies them on disk before publishing); the others become units of their own."""
        previous = self.carry.get(entry.relpath)
        if previous is not None and self.visible and not _still_staged(self.params, entry):
            previous = None  # its staging file is gone (moved, cleaned): copy it again
        if previous is None or previous[:2] != (entry.size, entry.mtime_ns):
            return False
        for offset, length in self.chunker.split(entry.file_id, entry.size):
            staged = previous[2].get(offset)
            if staged is not None and staged[0] == length:
                self.carried.append(RecordedPiece(entry.file_id, offset, length, staged[1]))
            else:
                self.new_unit([UnitPiece(entry, offset, length)])
        self.carried_files.append(entry)
        if len(self.carried) >= 1000:
            self.record_carried()
        return True

    def record_carried(self) -> None:
        """Count the chunks carried over as done, and their bytes as staged by an earlier run
        (`bytes_carried`: a resume's summary says how much of `bytes_done` this run moved)."""
        self.fence()
        self.store.record_unit(self.rid, None, self.carried, [], epoch=self.params.epoch, records=self.carried_files)
        self.store.add_count(self.rid, "bytes_carried", sum(p.length for p in self.carried))
        self.carried.clear()
        self.carried_files.clear()

    def directory(self, found: DirRecord) -> None:
        self.dirs.add(found)
        if (
            self.params.itemize
            and self.visible
            and not os.path.lexists(os.path.join(self.params.destination, found.relpath))
        ):  # before the skeleton makes it
            self.note(itemize.directory_created(found.relpath))
        if self.skeleton is not None:
            self.skeleton.make(found.relpath)

    def link(self, found: LinkRecord) -> None:
        self.links.add(found)
        listed = self.params.dry_run or self.params.itemize
        if listed and not (self.visible and dry_run_leaves_link(self.params.destination, found)):
            if self.params.itemize:
                self.note(itemize.link_made(found))
                return
            rel, target = shown(found.relpath), shown(found.target)
            self.note({"sym": f"link {rel} -> {target}", "hard": f"hardlink {rel} => {target}",
                       "special": f"special {rel}"}[found.kind])  # fmt: skip

    def skipped(self, found: Skipped) -> None:
        self.skips += 1
        log.warning("request %s: skipped %s: %s", self.rid, shown(found.relpath), found.reason)
        self.store.log_event(self.rid, "skipped", path=found.relpath, reason=found.reason)

    def write_units(self, units: list[list[tuple[int, int, int]]]) -> None:
        for unit in units:
            pieces = [UnitPiece(self.pending[fid], off, length) for fid, off, length in unit]
            for p in pieces:
                if p.offset + p.length >= p.file.size:
                    self.pending.pop(p.file.file_id, None)
            cut = len(pieces) == 1 and not pieces[0].whole_file
            self.order.add(pieces, pieces[0].file.file_id if cut else None)
        self.order.walked()

    def new_unit(self, pieces: list[UnitPiece]) -> None:
        # a unit carries its files' records: the only place the plan writes them
        index = self.units
        self.fence()
        self.store.write_unit(self.rid, index, pieces, describe_unit(pieces))
        self.units += 1
        self.store.note_units_written(self.rid, self.units)
        self.on_unit(index)

    def note(self, line: str) -> None:
        self.report.append(line)
        if len(self.report) >= 1000:
            self.fence()
            self.store.add_dryrun(self.rid, self.report)
            self.report.clear()

    def finish(self) -> PlanTotals:
        if self.skeleton is not None:
            self.skeleton.close()
        if not self.params.dry_run:
            self.write_units(self.chunker.finish())
            self.order.drain()
        for shards in (self.dirs, self.links, self.names):
            shards.flush()
        self.fence()
        if self.carried_files:
            self.record_carried()
        self.store.add_dryrun(self.rid, self.report)
        return PlanTotals(
            files_total=self.files_count,
            bytes_total=self.bytes,
            dirs_total=self.dirs.count,
            tasks_total=self.units,
            skipped=self.skips,
            files_uptodate=self.uptodate,
            bytes_uptodate=self.uptodate_bytes,
            file_shards=-(-self.files_count // SHARD),  # ceil: the finalize hashes file ids fall in
            dir_shards=self.dirs.shards,
            links_total=self.links.count,
            link_shards=self.links.shards,
            name_shards=self.names.shards,
            excluded=self.excluded,
        )


class _Skeleton:
    """Create the destination's directories in walk order as the walk finds them, before the
    transfers of their files run (they would otherwise each create their own, concurrently).

    Processes that each create the directories of their files as they go contend in the
    kernel for the parent directories' locks, and spend about twice the system CPU
    (decision 0016). Through
    Beneath, so never through a symlink; a directory that cannot be made is left to the
    transfers, which report it per file. At most 256 directory descriptors stay open."""

    def __init__(self, params: SyncParams) -> None:
        self.beneath = destination_beneath(params)

    def make(self, reldir: str) -> None:
        if self.beneath.open_count >= 256:
            self.beneath.close()
        with contextlib.suppress(OSError):
            self.beneath.dir_fd(reldir)

    def close(self) -> None:
        self.beneath.close()

    def __del__(self) -> None:  # a plan that raised midway
        self.beneath.close()


def _still_staged(params: SyncParams, entry: FileRecord) -> bool:
    """Whether the staging file a previous run left for `entry` is still there, whole-sized
    (finalize re-verifies its bytes; this only avoids carrying over chunks that vanished)."""
    final = os.path.join(params.destination, entry.relpath)
    try:
        st = os.lstat(staging_path(final, params.request_id))
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == entry.size
