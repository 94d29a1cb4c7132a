"""Build, validate and summarize a sync request; the one maker and checker of request ids.

Every way into DMS (the CLI, dms.sync(), dms.sync_signature(), the dms.sync task that
Flower's HTTP API reaches) builds its request with make_params, so every one refuses the
same bad options and paths with the same messages.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from dms.config import DefaultsConfig
from dms.errors import RequestError
from dms.fs.filters import RuleSet, listed_path
from dms.fs.paths import request_path
from dms.model import SyncParams
from dms.options import OPTIONS, Option, unknown_options
from dms.route.queues import cluster_queue
from dms.sizes import parse_rate, parse_size

__all__ = ["check_request_id", "make_params", "new_request_id", "summarize", "task_request_id"]

#: The SyncParams fields, which the table's options fill by name.
_PARAM_FIELDS = frozenset(f.name for f in dataclasses.fields(SyncParams))
#: A request id names Redis keys, staging files and log lines: letters, digits, ".", "_", "-".
_ID = re.compile(r"[A-Za-z0-9._-]{1,200}")
#: A cluster or policy name: what workers.yml accepts for a cluster name.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")


def new_request_id() -> str:
    """Sortable and unique enough to type: 20261124-191500-3fa9c1."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def task_request_id(task_id: str) -> str:
    """The id of a request created by the dms.sync task: derived from the task's id, so a
    redelivered message finds the request its first delivery created."""
    return check_request_id(f"sync-{task_id}")


def check_request_id(request_id: object) -> str:
    """A request id is 1 to 200 letters, digits, ".", "_" or "-" (no glob or path character
    can reach a Redis pattern or a staging name)."""
    if not isinstance(request_id, str) or not _ID.fullmatch(request_id) or request_id in (".", ".."):
        raise RequestError(f"request id {request_id!r}: use 1 to 200 letters, digits, '.', '_' or '-'")
    return request_id


def make_params(
    source: str,
    destination: str,
    *,
    request_id: str | None = None,
    defaults: DefaultsConfig | None = None,
    **options: Any,
) -> SyncParams:
    """Validated SyncParams from the options of dms.options.OPTIONS (a ValueError names an
    unknown or malformed one; a RequestError a bad request id; a PathError a bad path).
    What is not given comes from `defaults` (workers.yml's `defaults:`: parallelism, chunk
    size), then from the table.

    The paths are checked as spelled and made absolute here (dms.fs.paths.request_path); what
    the file system says of them is checked where they are visible (dms.fs.paths.validate_pair).
    `direction="A_TO_B"` is source_cluster="A", destination_cluster="B". Filter rules come as
    `filters` (ordered ("+"|"-", pattern) pairs, as the CLI passes them) and, from Python,
    as `include`/`exclude` lists (includes first, then excludes).
    """
    unknown = unknown_options(options)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(o.name for o in OPTIONS)}")
    if defaults is not None:
        options = {"parallelism": defaults.parallelism, "chunk_size": defaults.chunk_size, **options}
    given = {o.name: _checked(o, options.get(o.name, o.default)) for o in OPTIONS}
    rid = check_request_id(new_request_id() if request_id is None else request_id)
    source_cluster, destination_cluster = _clusters(given["source_cluster"], given["destination_cluster"],
                                                    given["direction"])  # fmt: skip
    remote = source_cluster is not None  # the paths are on the clusters' nodes, maybe not visible here
    source = request_path("source", source, remote=remote)
    destination = request_path("destination", destination, remote=remote)
    rules = _rules(given["filters"], given["include"], given["exclude"])
    control_queue, data_queue, finalize_queue = _queues(source_cluster, destination_cluster,
                                                        given["control_queue"], given["data_queue"])  # fmt: skip
    derived = {"source_cluster", "destination_cluster", "filters", "control_queue", "data_queue"}
    as_given = {name: given[name] for name in _PARAM_FIELDS if name in given and name not in derived}
    return SyncParams(
        request_id=rid,
        source=source,
        destination=destination,
        unit_bytes=given["chunk_size"],
        source_cluster=source_cluster,
        destination_cluster=destination_cluster,
        filters=rules,
        control_queue=control_queue,
        data_queue=data_queue,
        finalize_queue=finalize_queue,
        files_listed=len(given["files_from"]),
        **as_given,  # every other option is a SyncParams field of the same name
    )


def _checked(option: Option, value: Any) -> Any:
    """`value` for `option`, checked by the option's kind (and normalized: a size in bytes,
    a single pattern as a one-rule list); a ValueError says what was expected."""
    name, kind = option.name, option.kind
    if value is None and option.default is None:
        return None
    if kind == "flag":
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False, got {value!r}")
        return value
    if kind in ("int", "count"):
        if value is None and kind == "count":
            return -1  # no limit
        low = -1 if kind == "count" else option.low
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= option.high:
            what = (
                "a non-negative integer (or -1: no limit)"
                if kind == "count"
                else f"an integer from {option.low} to {option.high}"
            )
            raise ValueError(f"{name} must be {what}, got {value!r}")
        return value
    if kind == "size":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"{name} must be a number of bytes or a size such as '64MiB', got {value!r}")
        size = parse_size(value)
        if size < 1:
            raise ValueError(f"{name} must be at least 1 byte, got {value!r}")
        return size
    if kind == "paths":
        if isinstance(value, str) or not isinstance(value, list | tuple) or not all(isinstance(p, str) for p in value):
            raise ValueError(f"{name} must be a list of paths relative to the source, got {type(value).__name__}")
        listed = {listed_path(p) for p in value if p.strip()}  # blank entries are ignored, as in rsync
        return tuple(sorted(listed or ({""} if value else set())))  # only blanks: the source alone
    if kind == "rate":
        try:
            return parse_rate(value)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    if kind == "choice":
        if value not in option.choices:
            raise ValueError(f"{name} must be one of {', '.join(option.choices)}, got {value!r}")
        return value
    if kind == "text":
        if not isinstance(value, str) or not value or "\0" in value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        if option.name_like and not _NAME.fullmatch(value):
            raise ValueError(f"{name} must be a name of letters, digits, '_' and '-', got {value!r}")
        return value
    if kind == "patterns":
        patterns = [value] if isinstance(value, str) else value
        if not isinstance(patterns, list | tuple) or not all(isinstance(p, str) and p for p in patterns):
            raise ValueError(f"{name} must be a pattern or a list of patterns, got {value!r}")
        return tuple(patterns)
    # rules
    if (
        isinstance(value, str)
        or not isinstance(value, list | tuple)
        or not all(
            isinstance(r, list | tuple) and len(r) == 2 and r[0] in ("+", "-") and isinstance(r[1], str) and r[1]
            for r in value
        )
    ):
        raise ValueError(f"{name} must be a list of ('+' or '-', pattern) pairs, got {value!r}")
    return tuple((str(k), str(p)) for k, p in value)


def _clusters(source: str | None, destination: str | None, direction: str | None) -> tuple[str | None, str | None]:
    if direction is not None:
        src, sep, dst = str(direction).partition("_TO_")
        if not sep or not src or not dst:
            raise ValueError(f"direction must look like A_TO_B, got {direction!r}")
        if (source or src) != src or (destination or dst) != dst:
            raise ValueError(f"direction {direction!r} contradicts source/destination cluster")
        if "_TO_" in dst:
            raise ValueError(f"direction must name two clusters, as A_TO_B, got {direction!r}")
        source, destination = src, dst
        for label, cluster in (("source", source), ("destination", destination)):
            if not _NAME.fullmatch(cluster):
                raise ValueError(f"direction {direction!r}: {label} cluster {cluster!r} is not a cluster name")
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
    filters: Sequence[tuple[str, str]], include: Sequence[str], exclude: Sequence[str]
) -> tuple[tuple[str, str], ...]:
    rules = tuple(filters) + tuple(("+", p) for p in include)
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
