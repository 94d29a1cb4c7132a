"""Scan a source tree into record streams, in a stable order (sorted names, depth-first).

Deterministic, so planning the same tree twice gives the same file ids. What
each entry becomes (like rsync -aHAXS):

- regular file -> FileRecord (mode, ns times, owner, xattrs, sparse flag); a
  second name of an inode already seen -> LinkRecord kind "hard";
- directory -> DirRecord (descended into unless a filter excludes it);
- symbolic link -> LinkRecord kind "sym" (its target as text; never followed);
- fifo, socket, device -> Skipped with a warning, or with `specials` a LinkRecord
  kind "special" (recreated with mknod at publish, like rsync -D);
- with `listings`, after each directory: DirNames, the names it holds that the filters do not
  exclude (for --delete, which protects an excluded destination entry by its own type).
"""

from __future__ import annotations

import base64
import contextlib
import operator
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from dms import native
from dms.fs.beneath import Beneath
from dms.fs.filters import RuleSet
from dms.fs.names import printable
from dms.fs.paths import is_staging_name
from dms.model import DirRecord, FileRecord, LinkRecord, Xattrs

__all__ = ["DirNames", "Excluded", "Inode", "Skipped", "UpToDate", "WalkEntry", "read_xattrs", "walk_tree"]


#: A directory's names are reported in pieces of at most this many (for --delete).
NAMES_PER_ROW = 1000
#: Directory descriptors a walk keeps open at most (per tree walked).
_OPEN_DIRS = 128


@dataclass(frozen=True)
class Skipped:
    relpath: str
    reason: str


@dataclass(frozen=True)
class Excluded:
    relpath: str


@dataclass(frozen=True)
class UpToDate:
    """A file the quick check found already at the destination: only its size is counted."""

    size: int


@dataclass(frozen=True)
class DirNames:
    """Names in the source directory `relpath` that the filters do not exclude (the delete pass
    protects excluded destination entries by the rules, on their own type, as rsync does); a
    big directory comes as several consecutive DirNames of the same relpath."""

    relpath: str
    names: tuple[str, ...]


WalkEntry = FileRecord | DirRecord | LinkRecord | Skipped | Excluded | DirNames


def read_xattrs(path: str) -> Xattrs:
    """Extended attributes of `path` (not following a symlink); () where unsupported."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    out = []
    for name in sorted(names):
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        out.append((name, base64.b64encode(value).decode()))
    return tuple(out)


@dataclass(frozen=True)
class Inode:
    """Follows the FileRecord of a file with several names (walk_tree(hardlinks=False)): the
    caller decides which name is copied and which are linked (the walk may be split)."""

    relpath: str
    dev: int
    ino: int
    current: bool = False  # the quick check (quick_check_into) found this name up to date


def walk_tree(
    root: str,
    rules: RuleSet | None = None,
    *,
    xattrs: bool = True,
    listings: bool = False,
    specials: bool = False,
    start: str = "",
    recursive: bool = True,
    hardlinks: bool = True,
    quick_check_into: str | None = None,
) -> Iterator[WalkEntry | Inode | UpToDate]:
    """Yield the root DirRecord, then every entry below it; file ids count from 0.

    With `start` (a relpath), walk only that subtree and do not yield its own
    DirRecord (whoever split the walk yielded it); with `recursive=False`, only the
    entries of the start directory itself. With `hardlinks=False`, multi-name files
    are all yielded as FileRecords, each followed by its Inode, for the caller to link.
    With `quick_check_into` (the destination root), a single-name regular file that is
    already there (planner.up_to_date without --checksum) is yielded as UpToDate, and
    its xattrs are never read.

    Each directory is listed and stat'ed by the native core in one call
    (native.scan_directory); names are sorted here, as str, for a stable order.
    """
    rules = rules or RuleSet()
    if not start:
        st = os.stat(root)
        yield DirRecord("", st.st_mtime_ns, st.st_atime_ns, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                        read_xattrs(root) if xattrs else ())  # fmt: skip
    next_id = 0
    inodes: dict[tuple[int, int], str] = {}  # files with several names: first relpath seen
    stack = [start]
    # Directories are reached from the root one component at a time (Beneath: no symlink is
    # followed, even one swapped in during the walk, and no path is longer than /proc/self/fd/N).
    with (
        Beneath(root) as source,
        Beneath(quick_check_into) if quick_check_into is not None else contextlib.nullcontext() as dest,
    ):
        while stack:
            rel_dir = stack.pop()
            for opened in (source, dest):
                if opened is not None and opened.open_count >= _OPEN_DIRS:
                    opened.close()  # bounded descriptors; they reopen on demand
            try:
                abs_dir = source.dir_path(rel_dir, create=False)
            except OSError as exc:
                yield Skipped(rel_dir or ".", f"cannot open directory: {printable(str(exc))}")
                continue
            dest_dir = None
            if dest is not None:
                with contextlib.suppress(OSError):  # missing, or not a directory: nothing there is up to date
                    dest_dir = dest.dir_path(rel_dir, create=False)
            err, entries = native.scan_directory(abs_dir, dest_dir, xattrs)
            if err:
                yield Skipped(rel_dir or ".", f"cannot list directory: {os.strerror(err)}")
                continue
            entries.sort(key=_BY_NAME)
            subdirs = []
            names = []
            for e in entries:
                name, err, mode = e.name, e.err, e.mode
                if is_staging_name(name):
                    continue  # a DMS staging file, never data
                rel = f"{rel_dir}/{name}" if rel_dir else name
                if err:
                    names.append(name)  # kept at the destination: it may well be there in the source
                    yield Skipped(rel, f"cannot stat: {os.strerror(err)}")
                    continue
                if rules and rules.excluded(rel, stat.S_ISDIR(mode)):
                    yield Excluded(rel)  # not in `names`: what the destination has under this name is
                    continue  # judged by the rules on its own type (rsync), and deleted unless they protect it
                names.append(name)
                if stat.S_ISREG(mode):
                    if e.nlink > 1 and hardlinks:
                        first = inodes.setdefault((e.dev, e.ino), rel)
                        if first != rel:
                            yield LinkRecord(rel, "hard", first)
                            continue
                    if e.up_to_date and (e.nlink == 1 or hardlinks):
                        yield UpToDate(e.size)
                        continue
                    yield FileRecord(
                        next_id, rel, e.size, e.mtime_ns, e.atime_ns, stat.S_IMODE(mode), e.uid, e.gid,
                        read_xattrs(os.path.join(abs_dir, name)) if xattrs else (), e.blocks * 512 < e.size,
                    )  # fmt: skip
                    next_id += 1
                    if e.nlink > 1 and not hardlinks:
                        yield Inode(rel, e.dev, e.ino, bool(e.up_to_date))
                elif stat.S_ISDIR(mode):
                    yield DirRecord(rel, e.mtime_ns, e.atime_ns, stat.S_IMODE(mode), e.uid, e.gid,
                                    read_xattrs(os.path.join(abs_dir, name)) if xattrs else ())  # fmt: skip
                    subdirs.append(rel)
                elif stat.S_ISLNK(mode):
                    try:
                        target = os.readlink(os.path.join(abs_dir, name))
                    except OSError as exc:
                        yield Skipped(rel, f"cannot read symbolic link: {exc.strerror}")
                        continue
                    yield LinkRecord(rel, "sym", target, e.mtime_ns, e.atime_ns, e.uid, e.gid)
                elif specials:
                    yield LinkRecord(rel, "special", f"{mode}:{e.rdev}", e.mtime_ns, e.atime_ns, e.uid, e.gid)
                else:
                    yield Skipped(rel, "special file (fifo, socket or device) skipped; --specials copies it")
            if listings:  # in pieces, so no stored value grows with the size of one directory
                for i in range(0, max(len(names), 1), NAMES_PER_ROW):
                    yield DirNames(rel_dir, tuple(names[i : i + NAMES_PER_ROW]))
            if recursive:
                stack.extend(reversed(subdirs))


_BY_NAME = operator.attrgetter("name")
