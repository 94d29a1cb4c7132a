"""Path rules: where staging files go, and which source/destination pairs are refused."""

from __future__ import annotations

import functools
import hashlib
import os

from dms.errors import PathError
from dms.fs.names import shown

__all__ = [
    "PSEUDO_TREES",
    "STAGING_SUFFIX",
    "is_staging_name",
    "request_path",
    "request_tag",
    "staged_by",
    "staging_path",
    "validate_destination",
    "validate_pair",
    "validate_source",
]

STAGING_SUFFIX = ".partial"
_NAME_MAX = 255


@functools.lru_cache(maxsize=64)
def request_tag(request_id: str) -> str:
    """A short, filesystem-safe tag of a request id (ids are user-chosen strings)."""
    return hashlib.sha256(request_id.encode()).hexdigest()[:10]


def staging_path(final_path: str, request_id: str) -> str:
    """The staging name of `final_path`: hidden, in the same directory, tagged by request.

    Same directory, so the final rename is atomic (one filesystem); tagged, so two
    requests never share a staging file; hidden, so `ls` and globbing skip it.
    """
    directory, name = os.path.split(final_path)
    tag = request_tag(request_id)
    staged = f".{name}.dms-{tag}{STAGING_SUFFIX}"
    if len(os.fsencode(staged)) > _NAME_MAX:
        staged = f".dms-{tag}-{hashlib.sha256(os.fsencode(name)).hexdigest()[:24]}{STAGING_SUFFIX}"
    return os.path.join(directory, staged)


def is_staging_name(name: str) -> bool:
    return name.startswith(".") and name.endswith(STAGING_SUFFIX) and ".dms-" in name


def staged_by(name: str, request_id: str) -> bool:
    """Whether the staging name `name` belongs to request `request_id` (its tag is in it)."""
    return is_staging_name(name) and f".dms-{request_tag(request_id)}" in name


#: Kernel pseudo-filesystems: nothing there is data, and writing there changes the machine.
PSEUDO_TREES = ("/proc", "/sys", "/dev")


def is_within(path: str, tree: str) -> bool:
    """Whether `path` is `tree` or lies below it (both absolute and normalized): the one
    test of containment, used for roots, pseudo-filesystems and nested sync paths."""
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def is_normal_absolute(path: str) -> bool:
    """Absolute, without NUL, "." or "..": a path that can be judged without resolving it."""
    return path.startswith("/") and "\0" not in path and all(p not in (".", "..") for p in path.split("/"))


def request_path(label: str, path: object, *, remote: bool = False) -> str:
    """The spelling check of one request path, run wherever a request is built; returns it
    absolute (made so against the current directory, unless `remote`).

    Refused: a path that is not a string, is empty (rsync and cp refuse "" too: made absolute
    it would be the current directory), holds a NUL byte, or lies in /proc, /sys or /dev. A
    `remote` path (on another cluster; this host may not see it) must be absolute and free
    of "." and ".." components, since it cannot be resolved here.
    """
    if not isinstance(path, str):
        raise PathError(f"{label} must be a path (a string), got {type(path).__name__}")
    if path == "":
        raise PathError(f"{label} is an empty string: give a directory path")
    if "\0" in path:
        raise PathError(f"{label} {shown(path)}: a path cannot hold a NUL byte")
    if remote:
        if not is_normal_absolute(path):
            raise PathError(f"{label} {shown(path)}: a path on another cluster must be absolute, without . or ..")
        absolute = os.path.normpath(path)
    else:
        absolute = os.path.abspath(path)
    _refuse_pseudo(label, path, absolute)
    return absolute


def _refuse_pseudo(label: str, given: str, path: str) -> None:
    for tree in PSEUDO_TREES:
        if is_within(path, tree):
            raise PathError(f"{label} {shown(given)} is in {tree}, a kernel pseudo-filesystem, not data")


def validate_source(source: str) -> str:
    """A source must exist, be a directory and be readable; returns its real path."""
    src = os.path.realpath(source)
    if not os.path.lexists(source):
        raise PathError(f"source {shown(source)} does not exist")
    if not os.path.isdir(src):
        raise PathError(f"source {shown(source)} is not a directory")
    if not os.access(src, os.R_OK | os.X_OK):
        raise PathError(f"source {shown(source)} is not readable")
    _refuse_pseudo("source", source, src)
    return src


def validate_destination(destination: str) -> str:
    """A destination must be a directory or not exist yet, below directories only; returns
    its real path (what exists of it resolved, the rest appended). Creates nothing."""
    if os.path.islink(destination) and not os.path.exists(destination):
        raise PathError(f"destination {shown(destination)} is a symbolic link to {shown(os.readlink(destination))}, "
                        "which does not exist")  # fmt: skip
    dst = os.path.realpath(destination)
    _refuse_pseudo("destination", destination, dst)
    probe = dst
    while not os.path.lexists(probe):  # the deepest part that exists must be a directory
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        if probe == dst:
            raise PathError(f"destination {shown(destination)} exists and is not a directory")
        raise PathError(f"destination {shown(destination)} is under {shown(probe)}, which is not a directory")
    return dst


def validate_pair(source: str, destination: str) -> tuple[str, str]:
    """Check a sync's paths on the host that sees them, before anything is written; returns
    both resolved (symbolic links followed, as the kernel will).

    Refused, besides what validate_source and validate_destination refuse: a destination
    that is the source or lies inside it (the copy would copy itself), and a source that lies
    inside the destination (with --delete, the sync would delete its own source).
    """
    src = validate_source(source)
    dst = validate_destination(destination)
    if is_within(dst, src):
        raise PathError(f"destination {shown(destination)} is inside the source {shown(source)}")
    if src != dst and is_within(src, dst):
        raise PathError(f"source {shown(source)} is inside the destination {shown(destination)}")
    return src, dst
