"""Build source trees that exercise the chunking edge cases, and compare trees exactly."""

from __future__ import annotations

import filecmp
import os
import random
import stat
from collections.abc import Callable
from pathlib import Path

MIB = 1024 * 1024


def write_unique(path: Path, size: int, seed: int) -> None:
    """Incompressible bytes where every 64 KiB block differs (an offset bug cannot hide)."""
    rng = random.Random(seed)
    block = rng.randbytes(64 * 1024)
    with open(path, "wb") as f:
        written = 0
        index = 0
        while written < size:
            n = min(len(block), size - written)
            f.write((index.to_bytes(8, "little") + block[8:])[:n])
            written += n
            index += 1


def build_edge_tree(root: Path, chunk_size: int, small_files: int = 2000, seed: int = 7) -> None:
    """Nested dirs, empty files and dirs, chunk-size edges, a many-chunk file, many small
    files, names with spaces and non-ASCII characters, varied modes and ns mtimes."""
    rng = random.Random(seed)
    (root / "empty dir" / "nested empty").mkdir(parents=True)
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "données é ü 日本").mkdir()
    write_unique(root / "exact chunk", chunk_size, 1)
    write_unique(root / "a" / "chunk plus one", chunk_size + 1, 2)
    write_unique(root / "a" / "b" / "many chunks.bin", chunk_size * 5 + 12345, 3)
    write_unique(root / "données é ü 日本" / "fichier ñ.txt", 777, 4)
    (root / "zero").touch()
    (root / "a" / "b" / "c" / "zero too").touch()
    for i in range(small_files):
        d = root / "small" / f"d{i % 20:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f {i}.dat").write_bytes(rng.randbytes(rng.randrange(0, 9000)))
    modes = [0o600, 0o640, 0o644, 0o755, 0o700]
    for i, (dirpath, _dirnames, filenames) in enumerate(os.walk(root)):
        for j, name in enumerate(filenames):
            p = os.path.join(dirpath, name)
            os.chmod(p, modes[(i + j) % len(modes)])
            os.utime(p, ns=(1_600_000_000_123_456_789 + j, 1_500_000_000_987_654_321 + i * 1000 + j))
    for i, (dirpath, _, _) in enumerate(sorted(os.walk(root), key=lambda w: -w[0].count("/"))):
        os.chmod(dirpath, 0o755 if i % 2 else 0o750)
        os.utime(dirpath, ns=(1_400_000_000_000_000_001, 1_400_000_000_000_000_000 + i))


def make_tree(root: Path, files: int, big_files: int = 0, big_size: int = 0, seed: int = 11) -> None:
    """A plain tree: `files` small files over a few directories, plus `big_files` of `big_size`."""
    rng = random.Random(seed)
    for i in range(files):
        d = root / f"dir{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"file{i}.txt").write_bytes(rng.randbytes(rng.randrange(0, 20000)))
    root.mkdir(parents=True, exist_ok=True)
    for i in range(big_files):
        write_unique(root / f"big{i}.bin", big_size, seed + i)


def snapshot(root: Path) -> dict[str, tuple[str, int, int, int]]:
    """relpath -> (kind, size, mode, mtime_ns) for every entry below root (root is '.')."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        names = [*dirnames, *filenames]
        for name in [".", *names] if dirpath == str(root) else names:
            p = os.path.normpath(os.path.join(dirpath, name))
            st = os.lstat(p)
            kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
            size = st.st_size if kind == "file" else 0
            out[os.path.relpath(p, root)] = (kind, size, stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return out


def assert_same_tree(
    src: Path,
    dst: Path,
    ignore: set[str] = frozenset(),
    mtime_ignored: set[str] = frozenset(),  # type: ignore[assignment]
) -> None:
    """Same entries, kinds, sizes, modes, mtimes and content; `ignore`: entries left out,
    `mtime_ignored`: directories compared without their mtime."""
    a, b = snapshot(src), snapshot(dst)
    for rel in ignore:
        a.pop(rel, None)
        b.pop(rel, None)
    for snap in (a, b):
        for rel in mtime_ignored:
            if rel in snap:
                snap[rel] = (*snap[rel][:3], 0)
    only_src, only_dst = sorted(set(a) - set(b))[:5], sorted(set(b) - set(a))[:5]
    assert sorted(a) == sorted(b), f"entries differ: only in source {only_src}, only in destination {only_dst}"
    for rel, meta in a.items():
        assert b[rel] == meta, f"{rel}: source {meta} != destination {b[rel]}"
        if meta[0] == "file":
            assert filecmp.cmp(src / rel, dst / rel, shallow=False), f"{rel}: contents differ"


def meta_snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """relpath -> everything rsync -aHAXS preserves: kind, mode, mtime, size, content digest,
    symlink target, owner, xattrs, sparseness and hard-link group (root is '.')."""
    import hashlib

    out: dict[str, tuple[object, ...]] = {}
    groups: dict[tuple[int, int], str] = {}
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in [".", *dirnames, *filenames] if dirpath == str(root) else [*dirnames, *filenames]:
            entries.append(os.path.normpath(os.path.join(dirpath, name)))
    for p in sorted(entries):
        st = os.lstat(p)
        rel = os.path.relpath(p, root)
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(p), st.st_mtime_ns, st.st_uid, st.st_gid)
            continue
        try:
            xattrs = tuple(sorted((n, os.getxattr(p, n, follow_symlinks=False)) for n in os.listxattr(p)))
        except OSError:
            xattrs = ()
        base = (stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_uid, st.st_gid, xattrs)
        if stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", *base)
        elif stat.S_ISREG(st.st_mode):
            group = groups.setdefault((st.st_dev, st.st_ino), rel) if st.st_nlink > 1 else None
            digest = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            sparse = st.st_blocks * 512 < st.st_size // 2
            out[rel] = ("file", *base, st.st_size, digest, sparse, group)
        else:
            out[rel] = ("special", stat.S_IFMT(st.st_mode))
    return out


def build_semantics_tree(root: Path, seed: int = 5) -> None:
    """A tree that exercises rsync -aHAXS: modes, ns times, symlinks (relative, absolute,
    dangling, to a directory), hard links across directories, xattrs, a sparse file,
    owners (when root), a fifo, empty and deep directories, odd names."""
    rng = random.Random(seed)
    for d in ("a/b", "empty", "deep/x/y/z", "sp ace é"):
        (root / d).mkdir(parents=True, exist_ok=True)
    files = [("file1", 0o644), ("a/f2", 0o600), ("a/b/f3.sh", 0o755), ("deep/x/y/z/f4", 0o640),
             ("sp ace é/naïve file", 0o644)]  # fmt: skip
    for rel, mode in files:
        (root / rel).write_bytes(rng.randbytes(rng.randrange(1, 50000)))
        os.chmod(root / rel, mode)
    (root / "h1").write_bytes(b"hard linked content")
    os.link(root / "h1", root / "a" / "h2")
    os.link(root / "h1", root / "a" / "b" / "h3")
    os.symlink("../file1", root / "a" / "link-to-file")
    os.symlink("/etc/passwd", root / "abs-link")
    os.symlink("nowhere/x", root / "dangling")
    os.symlink("a", root / "dirlink")
    os.setxattr(root / "file1", "user.colour", b"blue")
    os.setxattr(root / "a", "user.project", b"dms")
    with open(root / "sparse.img", "wb") as f:
        f.truncate(16 * MIB)
        f.seek(8 * MIB)
        f.write(rng.randbytes(10000))
    os.mkfifo(root / "fifo")
    if os.geteuid() == 0:
        os.chown(root / "a" / "f2", 1234, 5678)
        os.lchown(root / "dangling", 4321, 8765)
    for i, p in enumerate(sorted(root.rglob("*"), key=lambda q: -len(q.parts))):
        if not p.is_symlink() and p.is_file():
            os.utime(p, ns=(1_600_000_000_000_000_000 + i, 1_600_000_000_123_456_789 + i * 1001))
    for i, p in enumerate(sorted([root, *(q for q in root.rglob("*") if q.is_dir() and not q.is_symlink())],
                                 key=lambda q: -len(q.parts))):  # fmt: skip
        os.utime(p, ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_007 + i))


def comparable(root: Path) -> dict[str, tuple[object, ...]]:
    """meta_snapshot without symlink mtimes (rsync here does not keep them) and without the
    top directory's mtime (rsync sometimes leaves it at "now" when it renames a file into
    it after setting its time; DMS sets directory times last: checked against the source)."""
    snap = meta_snapshot(root)
    out = {k: (v[0], v[1], v[3], v[4]) if v[0] == "link" else v for k, v in snap.items()}
    out["."] = (*snap["."][:2], *snap["."][3:])
    return out


def assert_like_rsync(a: Path, b: Path) -> None:
    sa, sb = comparable(a), comparable(b)
    diff = {k: (sa.get(k), sb.get(k)) for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k)}
    assert not diff, f"rsync and DMS differ on {len(diff)} entries: {dict(list(diff.items())[:6])}"


def assert_like_oracle(
    source: Path,
    oracle: Path,
    ours: Path,
    excluded: Callable[[str], bool] | None = None,
    fresher: set[str] | None = None,
) -> None:
    """DMS's destination `ours` against rsync's `oracle` of the same `source`: every entry as
    assert_like_rsync compares it, except directory mtimes, which are compared with the source.

    rsync makes a hard link whose first name it met later (names sort as bytes) at the end of
    its run, after it set that directory's times, so such a directory keeps the time of the
    link (rsync 3.2-3.5, even on a second pass); DMS sets directory times last.

    A file whose content differs, DMS's being the source's, is accepted (_fresher_content) and
    added to `fresher`; a name in `fresher` whose content alone still differs later (left at
    the destination once the source dropped it) is accepted too.

    Hard-link groups are compared among the names the sync copies, the source's: a name
    left at the destination that the source does not have (extraneous, kept without
    --delete) or that a filter excludes (protected) is compared without its group, and a
    group is named by its first such name. Whether a left-over name still shares an inode
    with copied names depends on how each tool made the group (rsync links new names to a
    destination inode that is already up to date; DMS makes the group from its first name,
    so a left-over name keeps the old inode on its own); the source says nothing of it."""
    sa, sb = comparable(oracle), comparable(ours)
    src = meta_snapshot(source)

    def copied(rel: str) -> bool:
        return rel in src and not (excluded is not None and excluded(rel))

    for snap in (sa, sb):
        for rel, v in snap.items():
            if v[0] == "dir":
                snap[rel] = (v[0], v[1], *v[3:])
        _regroup(snap, copied)
    diff = {k: (sa.get(k), sb.get(k)) for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k)}
    for rel, (theirs, mine) in list(diff.items()):
        if _fresher_content(theirs, mine, src.get(rel)):
            del diff[rel]
            if fresher is not None:
                fresher.add(rel)
        elif fresher is not None and rel in fresher and _only_content_differs(theirs, mine):
            del diff[rel]  # accepted in an earlier sync, and left since (no longer in the source)
    assert not diff, f"rsync and DMS differ on {len(diff)} entries: {dict(list(diff.items())[:6])}"
    ours_snap = meta_snapshot(ours)
    times = {rel: (v[2], ours_snap[rel][2]) for rel, v in src.items()
             if v[0] == "dir" and rel != "." and ours_snap.get(rel, ("",))[0] == "dir" and ours_snap[rel][2] != v[2]
             and not (excluded is not None and excluded(rel))}  # fmt: skip
    assert not times, f"directory mtimes differ from the source's: {dict(list(times.items())[:6])}"


def _regroup(snap: dict[str, tuple[object, ...]], copied: Callable[[str], bool]) -> None:
    """Hard-link groups of `snap` among the names `copied` says the sync copies: each such
    name's group becomes its first copied member (None when it is the only one); names not
    copied lose their group."""
    members: dict[object, list[str]] = {}
    for rel, v in snap.items():
        if v[0] == "file" and v[-1] is not None and copied(rel):
            members.setdefault(v[-1], []).append(rel)
    for rel, v in list(snap.items()):
        if v[0] != "file":
            continue
        if not copied(rel):
            snap[rel] = v[:-1]
        elif v[-1] is not None:
            group = sorted(members[v[-1]])
            snap[rel] = (*v[:-1], group[0] if len(group) > 1 else None)


#: rsync errors that are rsync's own defects, not a difference DMS should copy: rsync 3.5.0
#: asks for the default ACL of the name it is about to hard-link where a directory stood
#: (`get_acl: sys_acl_get_file(x, ACL_TYPE_DEFAULT): Permission denied`) and exits 23,
#: though the link is made and the tree is right.
RSYNC_QUIRKS = ("ACL_TYPE_DEFAULT): Permission denied",)


def rsync_succeeded(returncode: int, stderr: str) -> bool:
    """Whether an rsync run did all it should: exit 0, or 23 with only RSYNC_QUIRKS reported."""
    if returncode == 0:
        return True
    errors = [line for line in stderr.splitlines() if line.startswith("rsync:") and "rsync error:" not in line]
    return returncode == 23 and bool(errors) and all(any(q in line for q in RSYNC_QUIRKS) for line in errors)


def _fresher_content(theirs: tuple[object, ...] | None, mine: tuple[object, ...] | None,
                     source: tuple[object, ...] | None) -> bool:  # fmt: skip
    """A file on which the two copies differ only in content, DMS's being the source's: rsync's
    quick check (size and mtime in whole seconds) skipped a rewrite that DMS's (size, mtime in
    ns, mode, owner, xattrs) copied. DMS is then closer to the source, not wrong."""
    if not (theirs and mine and source) or theirs[0] != "file" or mine[0] != "file" or source[0] != "file":
        return False
    return _only_content_differs(theirs, mine) and mine[_DIGEST] == source[_DIGEST]


#: Where meta_snapshot puts a file's content digest: ("file", mode, mtime, uid, gid, xattrs,
#: size, digest, sparse, group).
_DIGEST = 7


def _only_content_differs(theirs: tuple[object, ...] | None, mine: tuple[object, ...] | None) -> bool:
    if not (theirs and mine) or theirs[0] != "file" or mine[0] != "file":
        return False
    return theirs[:_DIGEST] + theirs[_DIGEST + 1 :] == mine[:_DIGEST] + mine[_DIGEST + 1 :]
