"""`dms-submit logs ID`: the request's event log (submitted, planned, units, ended, ...)."""

from __future__ import annotations

import json

import click

from dms.cli import cli
from dms.cli.connection import control_plane, fail
from dms.cli.render import when
from dms.errors import DmsError, RequestError

__all__ = ["logs"]


@cli.command()
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def logs(obj: dict[str, str | None], request_id: str, as_json: bool) -> None:
    """Print REQUEST_ID's event log, oldest first (the last 2,000 events are kept)."""
    try:
        with control_plane(obj) as plane:
            if not plane.store.exists(request_id):
                raise RequestError(f"no such request: {request_id!r} (unknown, or expired)")
            events = plane.store.events(request_id)
    except DmsError as exc:
        fail(exc, as_json)
    for e in events:
        if as_json:
            click.echo(json.dumps(e, sort_keys=True))
            continue
        detail = " ".join(f"{k}={v}" for k, v in sorted(e.items()) if k not in ("at", "event") and v is not None)
        click.echo(f"{when(e['at'])}  {e['event']:<16} {detail}".rstrip())
