"""Build, validate and summarize a sync request; the one maker and checker of request ids.

Every way into DMS (the CLI, dms.sync(), dms.sync_signature(), the dms.sync task that
Flower's HTTP API reaches) builds its request with make_params, so every one refuses the
same bad options and paths with the same messages.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from dms.errors import RequestError
from dms.fs.filters import RuleSet
from dms.fs.paths import request_path
from dms.model import SyncParams
from dms.options import OPTIONS, unknown_options
from dms.route.queues import cluster_queue
from dms.sizes import parse_size

__all__ = ["check_request_id", "make_params", "new_request_id", "summarize", "task_request_id"]

_ID_FORBIDDEN = frozenset("/:*?")


def new_request_id() -> str:
    """Sortable and unique enough to type: 20261124-191500-3fa9c1."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def task_request_id(task_id: str) -> str:
    """The id of a request created by the dms.sync task: derived from the task's id, so a
    redelivered message finds the request its first delivery created."""
    return check_request_id(f"sync-{task_id}")


def check_request_id(request_id: object) -> str:
    """A request id is a non-empty string of printable characters without whitespace, "/",
    ":", "*" or "?": it names Redis keys, staging files and log lines."""
    if (
        not isinstance(request_id, str)
        or not request_id
        or not request_id.isprintable()
        or any(c.isspace() or c in _ID_FORBIDDEN for c in request_id)
    ):
        raise RequestError(f"request id {request_id!r}: use letters, digits, '.', '_' or '-'")
    return request_id


def make_params(source: str, destination: str, *, request_id: str | None = None, **options: Any) -> SyncParams:
    """Validated SyncParams from the options of dms.options.OPTIONS (a ValueError names an
    unknown or malformed one; a RequestError a bad request id; a PathError a bad path).

    The paths are checked as spelled and made absolute here (dms.fs.paths.request_path); what
    the file system says of them is checked where they are visible (dms.fs.paths.validate_pair).
    `direction="A_TO_B"` is source_cluster="A", destination_cluster="B". Filter rules come as
    `filters` (ordered ("+"|"-", pattern) pairs, as the CLI passes them) and, from Python,
    as `include`/`exclude` lists (includes first, then excludes).
    """
    unknown = unknown_options(options)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(o.name for o in OPTIONS)}")
    given = {o.name: options.get(o.name, o.default) for o in OPTIONS}
    rid = check_request_id(new_request_id() if request_id is None else request_id)
    source_cluster, destination_cluster = _clusters(given["source_cluster"], given["destination_cluster"],
                                                    given["direction"])  # fmt: skip
    remote = source_cluster is not None  # the paths are on the clusters' nodes, maybe not visible here
    source = request_path("source", source, remote=remote)
    destination = request_path("destination", destination, remote=remote)
    rules = _rules(given["filters"], given["include"], given["exclude"])
    max_delete = -1 if given["max_delete"] is None else given["max_delete"]  # -1 (and None): no limit
    if not isinstance(max_delete, int) or isinstance(max_delete, bool) or max_delete < -1:
        raise ValueError(f"max_delete must be a non-negative integer, got {max_delete!r}")
    control_queue, data_queue, finalize_queue = _queues(source_cluster, destination_cluster,
                                                        given["control_queue"], given["data_queue"])  # fmt: skip
    parallelism = given["parallelism"]
    if not isinstance(parallelism, int) or isinstance(parallelism, bool) or parallelism < 1:
        raise ValueError(f"parallelism must be a positive integer, got {parallelism!r}")
    chunk = parse_size(given["chunk_size"])
    if chunk < 1:
        raise ValueError(f"chunk_size must be at least 1 byte, got {given['chunk_size']!r}")
    copy_method = given["copy_method"]
    if copy_method not in ("copy_file_range", "readwrite"):
        raise ValueError(f"copy_method must be 'copy_file_range' or 'readwrite', got {copy_method!r}")
    return SyncParams(
        request_id=rid,
        source=source,
        destination=destination,
        parallelism=parallelism,
        chunk_size=chunk,
        unit_bytes=chunk,
        copy_method=copy_method,
        fsync=bool(given["fsync"]),
        ignore_times=bool(given["ignore_times"]),
        source_cluster=source_cluster,
        destination_cluster=destination_cluster,
        scheduler=given["scheduler"],
        checksum=bool(given["checksum"]),
        delete=bool(given["delete"]),
        max_delete=max_delete,
        dry_run=bool(given["dry_run"]),
        xattrs=bool(given["xattrs"]),
        specials=bool(given["specials"]),
        filters=rules,
        control_queue=control_queue,
        data_queue=data_queue,
        finalize_queue=finalize_queue,
    )


def _clusters(source: str | None, destination: str | None, direction: str | None) -> tuple[str | None, str | None]:
    if direction is not None:
        src, sep, dst = str(direction).partition("_TO_")
        if not sep or not src or not dst:
            raise ValueError(f"direction must look like A_TO_B, got {direction!r}")
        if (source or src) != src or (destination or dst) != dst:
            raise ValueError(f"direction {direction!r} contradicts source/destination cluster")
        source, destination = src, dst
    if (source is None) != (destination is None):
        raise ValueError("give both the source and the destination cluster (--from A --to B), or neither")
    return source, destination


def _queues(source: str | None, destination: str | None, control: str, data: str) -> tuple[str, str, str]:
    """(control, data, finalize) queues. Single node: the given ones. Across clusters: plan on
    the source's cluster queue, finalize on the destination's, units on NIC queues chosen
    per unit (no data queue)."""
    if source is None or destination is None:
        return control, data, ""
    return cluster_queue(source), "", cluster_queue(destination)


def _rules(
    filters: Sequence[tuple[str, str]] | Sequence[list[str]], include: Sequence[str], exclude: Sequence[str]
) -> tuple[tuple[str, str], ...]:
    rules = tuple((str(k), str(p)) for k, p in filters) + tuple(("+", p) for p in include)
    rules += tuple(("-", p) for p in exclude)
    RuleSet(rules)  # refuse a malformed rule here
    return rules


def summarize(request_id: str, info: dict[str, Any]) -> dict[str, Any]:
    """The small result a sync returns (and a chained task receives)."""
    started, finished = info.get("created_at"), info.get("finished_at")
    return {
        "request_id": request_id,
        "state": info.get("state"),
        "error": info.get("error"),
        "files_total": info.get("files_total", 0),
        "files_done": info.get("files_done", 0),
        "files_failed": info.get("files_failed", 0),
        "bytes_total": info.get("bytes_total", 0),
        "bytes_done": info.get("bytes_done", 0),
        "seconds": round(finished - started, 3) if started and finished else None,
    }
