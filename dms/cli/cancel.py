"""`dms-submit cancel ID`: stop a request; its running transfers stop at their next slice."""

from __future__ import annotations

import click

from dms.cli import cli
from dms.cli.connection import control_plane, fail
from dms.cli.render import request_json, request_lines
from dms.client.submit import cancel as cancel_request
from dms.client.submit import wait
from dms.errors import DmsError

__all__ = ["cancel"]


@cli.command()
@click.argument("request_id")
@click.option("--wait", "wait_", is_flag=True, help="Wait until the request has ended.")
@click.option("--json", "as_json", is_flag=True, help="Print the request (or the error) as JSON.")
@click.pass_obj
def cancel(obj: dict[str, str | None], request_id: str, wait_: bool, as_json: bool) -> None:
    """Cancel REQUEST_ID: no new transfer starts, running ones stop within one slice
    (at most 64 MiB), staging files are removed, and the request ends CANCELLED.
    Files already published stay. Other requests are not touched."""
    try:
        with control_plane(obj) as plane:
            state = cancel_request(plane.store, request_id)
            if state is not None or not wait_:
                if as_json:  # the record as it is now: its state says whether it had ended already
                    click.echo(request_json(request_id, plane.store.get(request_id) or {}))
                else:
                    click.echo(f"{request_id} already ended: {state}" if state else f"{request_id}: cancel requested")
                return
            info = wait(plane.store, request_id, alive=plane.alive)
    except DmsError as exc:
        fail(exc, as_json)
    click.echo(request_json(request_id, info) if as_json else "\n".join(request_lines(request_id, info)))
