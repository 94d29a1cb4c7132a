"""Reach the control plane from the CLI: --broker and --config, then dms.client.connect."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from dms.client.connect import ControlPlane
from dms.client.connect import control_plane as _control_plane
from dms.errors import DmsError

__all__ = ["control_plane", "fail"]


@contextlib.contextmanager
def control_plane(obj: dict[str, str | None], *, worker_concurrency: int = 0) -> Iterator[ControlPlane]:
    """dms.client.connect.control_plane with the CLI's --config and --broker options applied."""
    env = dict(os.environ)
    if obj.get("broker_url"):
        env["DMS_BROKER_URL"] = obj["broker_url"] or ""
    with _control_plane(obj.get("config_path"), env, worker_concurrency=worker_concurrency) as plane:
        yield plane


def fail(error: DmsError, as_json: bool = False) -> None:
    """End the command with `error`'s exit code: one line on stderr, and with `as_json` also
    one JSON object on stdout (`error`, `kind`, `exit_code`), so a script that asked for JSON
    parses every outcome, not only the successful ones."""
    from dms.cli import DmsCliError

    raised = DmsCliError(error)
    if as_json:
        import json

        import click

        click.echo(json.dumps({"error": raised.message, "kind": type(error).__name__, "exit_code": raised.exit_code}))
    raise raised
