"""Turn a request record into the lines a person reads (and the JSON a script reads)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from dms.fs.names import printable, shown
from dms.sizes import format_size

__all__ = ["request_json", "request_lines", "when"]


def when(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def request_lines(request_id: str, info: dict[str, Any], errors: list[dict[str, Any]] | None = None) -> list[str]:
    params = info.get("params", {})
    elapsed = ""
    if info.get("finished_at") and info.get("created_at"):
        elapsed = f" ({info['finished_at'] - info['created_at']:.1f} s)"
    lines = [
        f"request      {request_id}",
        f"state        {info['state']}",
        f"source       {shown(params.get('source', '?'))}",
        f"destination  {shown(params.get('destination', '?'))}",
        f"files        {info['files_done']} done, {info['files_failed']} failed, {info['files_total']} total"
        + (f", {info['files_uptodate']} already up to date" if info.get("files_uptodate") else "")
        + (f" ({info['skipped']} entries skipped)" if info.get("skipped") else ""),
        f"bytes        {format_size(info['bytes_done'])} of {format_size(info['bytes_total'])} copied"
        f" ({info['bytes_done']} / {info['bytes_total']})"
        + (f", {format_size(carried)} of it staged by an earlier run" if (carried := info.get("bytes_carried")) else "")
        + (f", {format_size(info['bytes_inflight'])} more in flight" if info.get("bytes_inflight") else ""),
        f"tasks        {info['tasks_done']} of {info['tasks_total']}",
        f"created      {when(info.get('created_at'))}",
        f"finished     {when(info.get('finished_at'))}{elapsed}",
    ]
    if info.get("error"):
        lines.append(f"error        {printable(info['error'])}")
    for e in errors or []:
        lines.append(f"  failed     {e['path']}: {e['error']}")
    return lines


def request_json(
    request_id: str,
    info: dict[str, Any],
    errors: list[dict[str, Any]] | None = None,
    would: list[str] | None = None,
    key: str = "dry_run_lines",
) -> str:
    """The request as one JSON object; `errors` (failed files) and, for a dry run, `would`
    (the would-do lines: copy, update, link, hardlink, special, delete; or with -i the itemized
    changes) when given, under `key` (dry_run_lines, or changes for a real run's -i lines)."""
    record = {"request_id": request_id, **info}
    params = record.get("params")
    if isinstance(params, dict):  # paths in the one escaped form, as everywhere else
        paths = ("source", "destination")
        record["params"] = {k: shown(v) if k in paths and isinstance(v, str) else v for k, v in params.items()}
    if errors is not None:
        record["errors"] = errors
    if would is not None:
        record[key] = would
    return json.dumps(record, sort_keys=True)
