"""`dms-submit watch ID`: follow a request live until it ends."""

from __future__ import annotations

import sys

import click

from dms.cli import Interrupted, cli, exit_code_of
from dms.cli.connection import control_plane, fail
from dms.cli.display import ProgressDisplay
from dms.cli.untaken import UntakenWarning, both
from dms.client.submit import wait
from dms.errors import DmsError
from dms.model import RequestState

__all__ = ["display_mode", "watch"]


def display_mode(as_json: bool, plain: bool) -> str:
    if as_json:
        return "json"
    return "tty" if sys.stdout.isatty() and not plain else "plain"


@cli.command()
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON snapshot per line.")
@click.option("--plain", is_flag=True, help="Plain lines even on a terminal.")
@click.option("--interval", type=click.FloatRange(0.1), default=5.0, show_default=True,
              help="Seconds between lines (plain and JSON forms).")  # fmt: skip
@click.pass_obj
def watch(obj: dict[str, str | None], request_id: str, as_json: bool, plain: bool, interval: float) -> None:
    """Show REQUEST_ID's progress until it ends: bytes and files done, rate, ETA, failures.

    Exits 0 if it SUCCEEDED, else by why it ended (see `dms-submit --help`)."""
    display = ProgressDisplay(request_id, sys.stdout, display_mode(as_json, plain), interval)
    try:
        with control_plane(obj) as plane:
            try:
                untaken = UntakenWarning(plane.store, request_id, sys.stderr)
                info = wait(plane.store, request_id, on_progress=both(display, untaken), alive=plane.alive)
            except KeyboardInterrupt:
                raise Interrupted(request_id, watching=True) from None
    except DmsError as exc:
        fail(exc, as_json)
    if info["state"] != RequestState.SUCCEEDED.value:
        sys.exit(exit_code_of(info))
