"""`dms-submit resume ID`: run a failed, cancelled or interrupted request again, moving only what is missing."""

from __future__ import annotations

import sys

import click

from dms.cli import Interrupted, cli, exit_code_of
from dms.cli.connection import control_plane, fail
from dms.cli.render import request_json, request_lines
from dms.cli.untaken import UntakenWarning
from dms.client.submit import resume as resume_request
from dms.client.submit import wait
from dms.errors import DmsError
from dms.model import RequestState

__all__ = ["resume"]


@cli.command()
@click.argument("request_id")
@click.option("--force", is_flag=True, help="Resume a request that has not ended (its workers died or were stopped).")
@click.option("--wait", "wait_", is_flag=True, help="Wait for the end; exit 0 only if it SUCCEEDED.")
@click.option("--json", "as_json", is_flag=True, help="Print the request (or the error) as JSON.")
@click.pass_obj
def resume(obj: dict[str, str | None], request_id: str, force: bool, wait_: bool, as_json: bool) -> None:
    """Resume REQUEST_ID with its own paths and options. Files already at the destination
    are skipped, and of a large file that was partly copied only the missing chunks move
    (staged chunks are verified again before the file is published). Re-submitting a
    failed request with `sync --id REQUEST_ID` and the same paths does the same."""
    try:
        with control_plane(obj, worker_concurrency=4) as plane:  # embedded: a worker to run it
            resume_request(plane.sender, plane.store, request_id, force=force)
            if not (wait_ or plane.embedded is not None):
                click.echo(request_json(request_id, plane.store.get(request_id) or {}) if as_json else request_id)
                return
            try:
                untaken = None if plane.embedded is not None else UntakenWarning(plane.store, request_id, sys.stderr)
                info = wait(plane.store, request_id, on_progress=untaken, alive=plane.alive)
            except KeyboardInterrupt:
                raise Interrupted(request_id, embedded=plane.embedded is not None) from None
    except DmsError as exc:
        fail(exc, as_json)
    click.echo(request_json(request_id, info) if as_json else "\n".join(request_lines(request_id, info)))
    if info["state"] != RequestState.SUCCEEDED.value:
        sys.exit(exit_code_of(info))
