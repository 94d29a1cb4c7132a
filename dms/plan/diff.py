"""The diff of a sync: what at the destination already matches the source and is left alone.

rsync's quick check (size, mtime, mode; owner as root; xattrs), --checksum's content
comparison, and the same for links and special files. Why apart from the planner: the
planner asks it of every entry, and finalize asks the link question again before it
replaces anything, so a re-sync changes no inode that already matches.
"""

from __future__ import annotations

import os
import stat

from dms import native
from dms.model import FileRecord, LinkRecord, SyncParams
from dms.plan.walk import read_xattrs

__all__ = [
    "content_matches",
    "dry_run_leaves_link",
    "link_in_place",
    "native_quick_check",
    "special_mode",
    "up_to_date",
]


def content_matches(f: FileRecord, source: str, destination: str) -> bool:
    try:
        return native.hash_range(os.path.join(source, f.relpath), 0, f.size) == native.hash_range(
            os.path.join(destination, f.relpath), 0, f.size
        )
    except OSError:
        return False


def dry_run_leaves_link(destination: str, link: LinkRecord) -> bool:
    """Whether a dry run would leave `link` as it is (so it lists nothing for it, as rsync -n)."""
    final = os.path.join(destination, link.relpath)
    try:
        return link_in_place(link, final, os.lstat(final), os.path.join(destination, link.target))
    except OSError:
        return False


def native_quick_check(params: SyncParams) -> str | None:
    """The destination root for walk_tree's native quick check (quick_check_into), or None
    where it does not apply: across clusters (a receiver answers), with --ignore-times (no
    check), with --checksum (up_to_date hashes both copies)."""
    same_side = params.source_cluster == params.destination_cluster
    return params.destination if same_side and not params.ignore_times and not params.checksum else None


def up_to_date(f: FileRecord, params: SyncParams) -> bool:
    """rsync's quick check: a regular file of the same size and mtime (to the nanosecond),
    and the same mode, is already there. Anything else (missing, another type, a
    different size, time or mode; as root another owner; with xattrs other extended
    attributes) is copied again. --ignore-times turns this off.

    With --checksum (rsync -c): same size and same content (XXH3-128 of both copies,
    read by the native core); a file whose content matches but whose mtime or mode
    differ only gets its metadata fixed, as rsync -a -c does."""
    final = os.path.join(params.destination, f.relpath)
    try:
        st = os.lstat(final)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != f.size:
        return False
    owner_differs = os.geteuid() == 0 and f.uid >= 0 and (st.st_uid, st.st_gid) != (f.uid, f.gid)
    if not params.checksum:
        same_meta = st.st_mtime_ns == f.mtime_ns and stat.S_IMODE(st.st_mode) == f.mode
        return same_meta and not owner_differs and not (params.xattrs and read_xattrs(final) != f.xattrs)
    if owner_differs or (params.xattrs and read_xattrs(final) != f.xattrs):
        return False  # copied again: the publish sets owner and attributes on what it verified
    if not content_matches(f, params.source, params.destination):
        return False
    if not params.dry_run and (st.st_mtime_ns != f.mtime_ns or stat.S_IMODE(st.st_mode) != f.mode):
        try:  # same content: only the metadata needs fixing (rsync -a -c)
            os.chmod(final, f.mode)
            os.utime(final, ns=(f.atime_ns, f.mtime_ns))
        except OSError:
            return False
    return True


def link_in_place(link: LinkRecord, final: str, here: os.stat_result | None, first: str) -> bool:
    """Whether `final` (whose lstat is `here`, None if missing) already is what `link` makes
    there: the same symlink target, the same inode as the hard link's first name `first`, the
    same special file. What is in place is left alone, and a dry run does not list it."""
    if here is None:
        return False
    if link.kind == "hard":
        there = os.lstat(first)
        return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
    if link.kind == "sym":
        return stat.S_ISLNK(here.st_mode) and os.readlink(final) == link.target
    mode, rdev = special_mode(link)
    device = stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
    return here.st_mode == mode and (not device or here.st_rdev == rdev)


def special_mode(link: LinkRecord) -> tuple[int, int]:
    """(st_mode, st_rdev) of a special file's record (its target is "<st_mode>:<st_rdev>")."""
    mode, rdev = (int(x) for x in link.target.split(":"))
    return mode, rdev
