"""rsync's itemized changes (`-i`, `--out-format=%i %n`): one line per change, in its form.

Eleven characters, then the name: `YXcstpoguax`. Y is what happens (`>` a file is received,
`c` an item is created locally, `h` a hard link, `*` a message: `*deleting`), X the type (`f`
file, `d` directory, `L` symlink, `D` device, `S` other special). For a new item the nine
attribute letters are `+`; for a file that is sent again they say why: `c` content (with
--checksum), `s` size, `t` mtime, `p` permissions, `o` owner and `g` group (as root); a `.`
is an attribute that did not change. DMS lists what it changes:
- files it copies;
- symlinks, hard links and specials it makes;
- directories it creates;
- what --delete removes.

It does not list attribute-only changes of items it leaves in place (rsync's `.d..t......`
lines for directories whose mtime it sets), nor the destination root it creates before the
plan (rsync's `cd+++++++++ ./`). Its quick check compares mtimes to the nanosecond, so a
file whose mtime moved by less than a second is sent (`>f..t......`) where rsync skips it.
A file whose only change is its mode is sent again too (`>f...p.....`, rsync `.f...p.....`).
Across clusters the planner cannot see the destination, so a file sent there is listed with
unknown attributes (`>f?????????`).
"""

from __future__ import annotations

import os
import stat

from dms.fs.names import shown
from dms.model import FileRecord, LinkRecord, SyncParams
from dms.plan.diff import special_mode

__all__ = ["deleting", "directory_created", "file_sent", "link_made"]

NEW = "+++++++++"


def file_sent(params: SyncParams, f: FileRecord, visible: bool) -> str:
    """The line of a file the sync copies; `visible`: the planner sees the destination."""
    name = shown(f.relpath)
    if not visible:
        return f">f????????? {name}"
    try:
        st = os.lstat(os.path.join(params.destination, f.relpath))
    except OSError:
        return f">f{NEW} {name}"
    if not stat.S_ISREG(st.st_mode):
        return f">f{NEW} {name}"  # rsync deletes the other type first and lists the file as new
    root = os.geteuid() == 0 and f.uid >= 0
    flags = [
        "c" if params.checksum and st.st_size == f.size else ".",
        "s" if st.st_size != f.size else ".",
        "t" if st.st_mtime_ns != f.mtime_ns else ".",
        "p" if stat.S_IMODE(st.st_mode) != f.mode else ".",
        "o" if root and st.st_uid != f.uid else ".",
        "g" if root and st.st_gid != f.gid else ".",
        ".",
        ".",
        ".",
    ]
    return f">f{''.join(flags)} {name}"


def link_made(link: LinkRecord) -> str:
    """The line of a symlink, hard link or special file the sync makes."""
    name, target = shown(link.relpath), shown(link.target)
    if link.kind == "sym":
        return f"cL{NEW} {name} -> {target}"
    if link.kind == "hard":
        return f"hf{NEW} {name} => {target}"
    mode, _ = special_mode(link)
    kind = "D" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "S"
    return f"c{kind}{NEW} {name}"


def directory_created(relpath: str) -> str:
    """The line of a directory the sync creates (the destination root is `./`)."""
    return f"cd{NEW} {shown(relpath) + '/' if relpath else './'}"


def deleting(relpath: str, is_dir: bool) -> str:
    """The line of an entry --delete removes (rsync pads the message to the 11 columns)."""
    return f"*deleting   {shown(relpath)}{'/' if is_dir else ''}"
