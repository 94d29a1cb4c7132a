"""`dms-submit cancel ID`: stop a request; its running transfers stop at their next slice."""

from __future__ import annotations

import click

from dms.cli import cli
from dms.cli.connection import control_plane, fail
from dms.cli.render import request_lines
from dms.client.submit import cancel as cancel_request
from dms.client.submit import wait
from dms.errors import DmsError

__all__ = ["cancel"]


@cli.command()
@click.argument("request_id")
@click.option("--wait", "wait_", is_flag=True, help="Wait until the request has ended.")
@click.pass_obj
def cancel(obj: dict[str, str | None], request_id: str, wait_: bool) -> None:
    """Cancel REQUEST_ID: no new transfer starts, running ones stop within one slice
    (at most 64 MiB), staging files are removed, and the request ends CANCELLED.
    Files already published stay. Other requests are not touched."""
    try:
        with control_plane(obj) as plane:
            state = cancel_request(plane.store, request_id)
            if state is not None:
                click.echo(f"{request_id} already ended: {state}")
                return
            if not wait_:
                click.echo(f"{request_id}: cancel requested")
                return
            info = wait(plane.store, request_id, alive=plane.alive)
    except DmsError as exc:
        fail(exc)
    click.echo("\n".join(request_lines(request_id, info)))
