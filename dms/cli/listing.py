"""`dms-submit list`: recent requests, newest first."""

from __future__ import annotations

import json
import time

import click

from dms.cli import cli
from dms.cli.connection import control_plane, fail
from dms.cli.render import when
from dms.cli.types import DURATION
from dms.errors import DmsError
from dms.sizes import format_size

__all__ = ["list_requests"]


@cli.command("list")
@click.option("--limit", type=click.IntRange(1, 100000), default=50, show_default=True)
@click.option("--state", "states", multiple=True, help="Only requests in this state (repeatable).")
@click.option("--since", type=DURATION, help="Only requests created within this long, e.g. 90m, 12h, 7d.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def list_requests(
    obj: dict[str, str | None], limit: int, states: tuple[str, ...], since: float | None, as_json: bool
) -> None:
    """List recent requests, newest first."""
    try:
        with control_plane(obj) as plane:
            rows = plane.store.list_requests(limit=limit, since=time.time() - since if since else None, states=states)
    except DmsError as exc:
        fail(exc, as_json)
    for r in rows:
        if as_json:
            click.echo(json.dumps(r, sort_keys=True))
        else:
            click.echo(
                f"{r['request_id']:<28} {r['state']:<12} {when(r.get('created_at'))}  "
                f"files {r['files_done']}/{r['files_total']}  {format_size(r['bytes_total'])}"
            )
