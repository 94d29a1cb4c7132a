"""The walk fanned out over directory subtrees, as tasks.

`dms.plan` lists the top of the tree itself, then publishes one `dms.walk` task
per top-level directory. Each walk task lists and stats its subtree (readdir,
lstat, xattrs, the quick check against the destination: the part of planning
that costs system calls) and stores what it found in Redis, in chunks of
WALK_CHUNK entries. The planner consumes the subtrees in order as they become
ready, numbering files, writing shards and cutting units, which start at once.

Nobody waits on work nobody does: a subtree is claimed (SET NX with a TTL the
walker keeps refreshing) by whoever starts it, and the planner walks any
subtree that is not claimed yet itself; a walker that dies loses its claim
when the TTL runs out. The result of a subtree is deterministic, so a plan
that is run again (redelivery) gets the same file ids and units.

Hard links across subtrees: walkers report multi-name files with their inode,
and the planner, which sees every subtree in order, decides which name is
copied and which are linked.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from dms.model import DirRecord, FileRecord, LinkRecord, SyncParams
from dms.plan.diff import native_quick_check, up_to_date
from dms.plan.remote_check import remote_up_to_date
from dms.plan.walk import DirNames, Excluded, Inode, Skipped, UpToDate, walk_tree
from dms.state.leases import PlanLease
from dms.state.requests import RequestStore
from dms.state.walks import ClaimLost, WalkStore

__all__ = ["WALK_CHUNK", "WALK_TASKS", "fan_out_wanted", "fanned_out_walk", "walk_subtree"]

WALK_CHUNK = 1000
#: At most this many walk tasks per request: consecutive top-level directories are grouped,
#: so a tree of thousands of small top directories does not pay one task each.
WALK_TASKS = int(os.environ.get("DMS_WALK_TASKS", "16"))


class Row:
    """The tags of a walk row: [tag, ...] as JSON in a chunk, one per entry kind."""

    FILE = "F"  # [F, wire record, up to date (0/1), dev, ino]: dev/ino set for multi-name files
    UP_TO_DATE = "U"  # [U, size]: a file the walk's own quick check found current
    DIR = "D"
    LINK = "L"
    NAMES = "N"  # [N, relpath, names]: a directory's listing, for --delete
    EXCLUDED = "X"
    SKIPPED = "S"  # [S, relpath, reason]


def _encode(entry: Any) -> list[Any]:
    if isinstance(entry, UpToDate):
        return [Row.UP_TO_DATE, entry.size]
    if isinstance(entry, FileRecord):
        return [Row.FILE, entry.to_wire(), 0, 0, 0]  # [2]: up to date, set by the quick check
    if isinstance(entry, DirRecord):
        return [Row.DIR, entry.to_wire()]
    if isinstance(entry, LinkRecord):
        return [Row.LINK, entry.to_wire()]
    if isinstance(entry, DirNames):
        return [Row.NAMES, entry.relpath, list(entry.names)]
    if isinstance(entry, Excluded):
        return [Row.EXCLUDED, entry.relpath]
    if isinstance(entry, Skipped):
        return [Row.SKIPPED, entry.relpath, entry.reason]
    raise TypeError(f"cannot encode {entry!r}")


def _walk_rows(store: RequestStore, params: SyncParams, start: str, recursive: bool) -> Iterator[list[Any]]:
    """The entries of a walk as rows; a multi-name file's row carries its inode. Files are
    quick-checked in batches: here when the destination is visible, else by a receiver."""
    checked_into = native_quick_check(params)
    if params.ignore_times or checked_into is not None:  # checked_into: the walk does it, and yields UpToDate
        check = None
    elif params.source_cluster == params.destination_cluster:
        check = lambda files: [up_to_date(f, params) for f in files]  # noqa: E731
    else:
        check = lambda files: remote_up_to_date(store, params, files)  # noqa: E731
    walk = walk_tree(params.source, store.rules(params), xattrs=params.xattrs, listings=params.delete,
                     specials=params.specials, start=start, recursive=recursive, hardlinks=False,
                     quick_check_into=checked_into)  # fmt: skip
    rows: list[list[Any]] = []
    files: list[tuple[list[Any], FileRecord]] = []

    def flush() -> Iterator[list[Any]]:
        if check is not None and files:
            for (row, _), same in zip(files, check([f for _, f in files]), strict=True):
                row[2] = int(same)
        yield from rows
        rows.clear()
        files.clear()

    for entry in walk:
        if isinstance(entry, Inode):  # always right after its file's row
            rows[-1][3], rows[-1][4] = entry.dev, entry.ino
            if entry.current:
                rows[-1][2] = 1
            continue
        rows.append(_encode(entry))
        if isinstance(entry, FileRecord):
            files.append((rows[-1], entry))
            if len(files) >= WALK_CHUNK:
                yield from flush()
    yield from flush()


def walk_subtree(
    walks: WalkStore, params: SyncParams, sub: int, rels: list[str], owner: str, fence: Callable[[], None]
) -> None:
    """Walk the subtrees `rels` of group `sub` (claimed by `owner`) into chunks, then mark it
    done. `fence` raises (PlanSuperseded) once the plan run this walk is for has lost its lease;
    a write raises ClaimLost once `owner`'s claim has run out and another walks the group."""
    store = walks.store
    chunk: list[Any] = []
    count = 0
    for rel in rels:
        for row in _walk_rows(store, params, rel, recursive=True):
            chunk.append(row)
            if len(chunk) >= WALK_CHUNK:
                fence()
                walks.write_chunk(params.request_id, sub, count, chunk, owner)
                count, chunk = count + 1, []
    fence()
    if chunk:
        walks.write_chunk(params.request_id, sub, count, chunk, owner)
        count += 1
    walks.mark_done(params.request_id, sub, count, owner)


def fanned_out_walk(
    store: RequestStore, params: SyncParams, publish: Callable[[int, str], None], lease: PlanLease
) -> Iterator[FileRecord | UpToDate | DirRecord | LinkRecord | DirNames | Excluded | Skipped]:
    """Every entry of the tree, as the planner needs them, from the top listing and the
    subtree groups walked by `dms.walk` tasks (published with `publish(group, first relpath)`
    for this run, the holder of `lease`)."""
    rid = params.request_id
    owner = f"plan-{lease.token}"
    # A plan run again (redelivered after a crash mid-walk) starts the walk afresh, under
    # its own run token: what an earlier run left is dropped, and walkers of that run that
    # are still going stop at their next chunk (their run lost the lease).
    walks = WalkStore(store, lease.token)
    walks.drop(rid)
    first_names: dict[tuple[int, int], str] = {}
    subtrees: list[str] = []

    def resolve(row: list[Any]) -> Any:
        tag = row[0]
        if tag == Row.FILE:
            f = FileRecord.from_wire(row[1])
            if row[3] or row[4]:
                first = first_names.setdefault((row[3], row[4]), f.relpath)
                if first != f.relpath:
                    return LinkRecord(f.relpath, "hard", first)
            return UpToDate(f.size) if row[2] else f
        if tag == Row.UP_TO_DATE:
            return UpToDate(row[1])
        if tag == Row.DIR:
            return DirRecord.from_wire(row[1])
        if tag == Row.LINK:
            return LinkRecord.from_wire(row[1])
        if tag == Row.NAMES:
            return DirNames(row[1], tuple(row[2]))
        if tag == Row.EXCLUDED:
            return Excluded(row[1])
        return Skipped(row[1], row[2])

    for row in _walk_rows(store, params, "", recursive=False):
        entry = resolve(row)
        if isinstance(entry, DirRecord) and entry.relpath:
            subtrees.append(entry.relpath)
        yield entry
    size = -(-len(subtrees) // WALK_TASKS) if subtrees else 1  # ceil: at most WALK_TASKS groups
    groups = [subtrees[i : i + size] for i in range(0, len(subtrees), size)]
    walks.set_groups(rid, groups)
    for sub in range(1, len(groups)):  # the planner starts on the first group itself
        publish(sub, groups[sub][0])
    ahead = 1  # groups before this one were done or claimed when the planner last looked ahead
    for sub, rels in enumerate(groups):
        while not walks.is_done(rid, sub):
            lease.check()
            if walks.claim(rid, sub, owner):
                with contextlib.suppress(ClaimLost):  # this planner was slow; another walks it
                    walk_subtree(walks, params, sub, rels, owner, lease.check)
                continue
            ahead, walked = _walk_one_ahead(walks, params, groups, max(ahead, sub + 1), owner, lease)
            if not walked:
                time.sleep(0.02)
        for c in range(walks.chunk_count(rid, sub)):
            for row in walks.take_chunk(rid, sub, c):
                yield resolve(row)


def _walk_one_ahead(
    walks: WalkStore, params: SyncParams, groups: list[list[str]], start: int, owner: str, lease: PlanLease
) -> tuple[int, bool]:
    """While the group it needs is walked by another, the planner walks the next group from
    `start` on that nobody has claimed, instead of sleeping: the walk is bound by the kernel's
    cold stats, which overlap their disk waits best with every pool process stat'ing
    (decision 0024). Returns where to look next time, and whether it walked.

    A group found done or claimed is not tried again (its walker finishes it, or, if that
    walker dies, the planner claims it when it gets there), so a planner that waits polls
    only its own group, not every group after it."""
    for ahead in range(start, len(groups)):
        if not walks.is_done(params.request_id, ahead) and walks.claim(params.request_id, ahead, owner):
            with contextlib.suppress(ClaimLost):
                walk_subtree(walks, params, ahead, groups[ahead], owner, lease.check)
            return ahead + 1, True
    return len(groups), False


def fan_out_wanted(params: SyncParams) -> bool:
    """Fan out unless told not to (DMS_WALK_FANOUT=0: one serial walk, e.g. for a tiny tree)."""
    return os.environ.get("DMS_WALK_FANOUT", "1") != "0"
