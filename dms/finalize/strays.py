"""Stray staging files: what a copy of a unit that lost wrote after its files were published.

Copies of one unit do run at once: a message put back after a Redis restart, a lane
restarted, the janitor's re-dispatch of a unit that stood still, a stopped worker that
wakes up. The writers (the copier, the receiver) create a staging file wherever its name
is missing, so a copy still running after finalize renamed a file into place creates that
file's staging name anew, and nothing afterwards would remove it: a hidden
`.NAME.dms-*.partial` file, and its directory's mtime moved, in a request that SUCCEEDED.

So the copy that lost (its unit recorded first by another copy, or its request ended or
resumed while it ran) describes what it wrote: the unit's file names, and the source
times of their directories (`describe`). The description goes to the request
(RequestStore.note_strays) and finalize removes those staging names once the request
ended SUCCEEDED or CANCELLED (`remove`), when every staging file of the request is
garbage; if it has ended already, the dms.tidy task does it on the destination's side.
A directory that had a stray removed gets its source mtime back (decision 0032).

No Celery and no Redis here: the tasks move the descriptions.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Sequence

from dms.fs.beneath import Beneath, destination_beneath
from dms.fs.names import pack_names, unpack_names
from dms.fs.paths import staging_path
from dms.model import SyncParams, UnitPiece

__all__ = ["describe", "read", "remove"]

log = logging.getLogger(__name__)

_FILE, _DIR = b"F", b"D"


def describe(params: SyncParams, pieces: Sequence[UnitPiece]) -> str:
    """The files of `pieces` and their directories' source times, as one ASCII string.

    Names are bytes (any name, not only UTF-8 ones), packed by dms.fs.names.pack_names: a unit
    of 1,000 small files describes itself in a few KiB."""
    files = sorted({os.fsencode(p.file.relpath) for p in pieces})
    items = [_FILE + f for f in files]
    dirs = sorted({os.path.dirname(f) for f in files})
    with contextlib.suppress(OSError), Beneath(params.source) as source:
        for d in dirs:
            try:
                st = os.fstat(source.dir_fd(os.fsdecode(d), create=False))
            except OSError:
                continue  # gone from the source meanwhile: its destination keeps the time it has
            items.append(_DIR + b"%d/%d/" % (st.st_mtime_ns, st.st_atime_ns) + d)
    return pack_names(items)


def read(blob: str) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """(file relpaths, {directory relpath: (mtime_ns, atime_ns)}) of a describe() string."""
    files: list[str] = []
    times: dict[str, tuple[int, int]] = {}
    for item in unpack_names(blob):
        kind, rest = item[:1], item[1:]
        if kind == _FILE:
            files.append(os.fsdecode(rest))
        elif kind == _DIR:
            mtime, atime, name = rest.split(b"/", 2)
            times[os.fsdecode(name)] = (int(mtime), int(atime))
    return files, times


def remove(params: SyncParams, blobs: Iterable[str]) -> int:
    """Remove the staging names of the files the descriptions name, in the request's
    destination on this node, and give each directory that had one its source mtime back.
    Call only for a request that ended SUCCEEDED or CANCELLED: then no staging file of
    it is needed. Returns how many were removed."""
    by_dir: dict[str, set[str]] = {}
    times: dict[str, tuple[int, int]] = {}
    for blob in blobs:
        files, dir_times = read(blob)
        times.update(dir_times)
        for relpath in files:
            by_dir.setdefault(os.path.dirname(relpath), set()).add(os.path.basename(relpath))
    removed = 0
    with destination_beneath(params) as beneath:
        for reldir, names in sorted(by_dir.items(), key=lambda item: -item[0].count("/")):  # deepest first
            try:
                fd = beneath.dir_fd(reldir, create=False)  # never through a symlink swapped in
            except OSError:
                continue  # no such directory: nothing was left there
            here = 0
            for name in names:
                try:
                    os.unlink(staging_path(name, params.request_id), dir_fd=fd)
                    here += 1
                except (FileNotFoundError, NotADirectoryError):
                    pass
                except OSError as exc:
                    log.warning("request %s: cannot remove a stray staging file of %r: %s", params.request_id,
                                os.path.join(reldir, name), exc)  # fmt: skip
            if here and reldir in times:
                mtime, atime = times[reldir]
                with contextlib.suppress(OSError):
                    os.utime(fd, ns=(atime, mtime))
            removed += here
    return removed
