"""`dms-submit status ID`: one request's state, counters and failures."""

from __future__ import annotations

import click

from dms.cli import cli
from dms.cli.connection import control_plane, fail
from dms.cli.render import request_json, request_lines
from dms.errors import DmsError, RequestError

__all__ = ["status"]


@cli.command()
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@click.option("--files", "show_files", is_flag=True, help="List the files that failed, with their errors.")
@click.pass_obj
def status(obj: dict[str, str | None], request_id: str, as_json: bool, show_files: bool) -> None:
    """Show the state and counters of REQUEST_ID."""
    try:
        with control_plane(obj) as plane:
            found = plane.store.get(request_id)
            if found is None:
                raise RequestError(f"no such request: {request_id!r} (unknown, or expired)")
            info = found
            errors = plane.store.errors(request_id) if show_files else None
    except DmsError as exc:
        fail(exc, as_json)
    click.echo(
        request_json(request_id, info, errors) if as_json else "\n".join(request_lines(request_id, info, errors))
    )
