"""Path rules: where staging files go, and which source/destination pairs are refused."""

from __future__ import annotations

import functools
import hashlib
import os

from dms.errors import PathError

__all__ = ["STAGING_SUFFIX", "is_staging_name", "request_tag", "staging_path", "validate_pair", "validate_source"]

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


def validate_source(source: str) -> str:
    """A source must exist, be a directory and be readable; returns its real path."""
    src = os.path.realpath(source)
    if not os.path.exists(source):
        raise PathError(f"source does not exist: {source}")
    if not os.path.isdir(src):
        raise PathError(f"source is not a directory: {source}")
    if not os.access(src, os.R_OK | os.X_OK):
        raise PathError(f"source is not readable: {source}")
    return src


def validate_pair(source: str, destination: str) -> tuple[str, str]:
    """Check a sync's paths before anything is written; returns both made absolute.

    Refused: a source that is missing, not a directory, or unreadable; a
    destination that is the source or lies inside it (the copy would copy
    itself); a destination that exists and is not a directory.
    """
    src = validate_source(source)
    dst = os.path.realpath(destination)
    if dst == src or dst.startswith(src.rstrip("/") + "/"):
        raise PathError(f"destination {destination} is inside the source {source}")
    if os.path.exists(dst) and not os.path.isdir(dst):
        raise PathError(f"destination exists and is not a directory: {destination}")
    return src, dst
