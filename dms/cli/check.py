"""`dms-submit check SRC DST`: do the trees differ? rclone's `check`, rsync's `-n -c --delete -i`.

A dry run with --checksum, --delete and --itemize-changes: it changes nothing, compares every
file's content (XXH3-128 of both copies, read by the native core, for files of the same
size), and lists what differs in rsync's itemized form: files missing or different at the
destination, links and directories missing there, and entries only the destination has.
Exit 0 when the trees match, 1 when they differ, as diff and rclone check do; a check that
could not run (a path, Redis) exits as any command does.
"""

from __future__ import annotations

import sys

import click

from dms.cli import cli, exit_code_of
from dms.cli.connection import control_plane, fail
from dms.cli.render import request_json
from dms.cli.sync import wait_for_end
from dms.client.submit import check_request_paths, submit
from dms.errors import ConfigError, DmsError
from dms.fs.names import shown
from dms.model import RequestState
from dms.request import make_params

__all__ = ["EXIT_DIFFERENT", "check"]

#: The exit code of a check that found differences (diff's and rclone check's).
EXIT_DIFFERENT = 1


@cli.command()
@click.argument("source")
@click.argument("destination")
@click.option("--id", "request_id", help="Request id (default: generated).")
@click.option("--include", multiple=True, help="Check only what matches (rsync rules; repeatable).")
@click.option("--exclude", multiple=True, help="Do not check what matches (rsync rules; repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (`differences`: the lines).")
@click.pass_obj
def check(
    obj: dict[str, str | None],
    source: str,
    destination: str,
    request_id: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    as_json: bool,
) -> None:
    """Compare the trees SOURCE and DESTINATION by content and change nothing: list each
    difference in rsync's itemized form (`>f+++++++++` missing at the destination,
    `>fc........` other content, `*deleting` only at the destination, ...) and exit 1 if
    there is any, 0 if the trees match. On one cluster (or embedded)."""
    try:
        filters = [("-", p) for p in exclude]
        if include:  # only what matches, and the directories leading to it
            filters += [("+", "*/")] + [("+", p) for p in include] + [("-", "*")]
        params = make_params(source, destination, request_id=request_id, checksum=True, dry_run=True, delete=True,
                             itemize=True, filters=filters)  # fmt: skip
        if params.clustered:
            raise ConfigError("check compares trees on one cluster; across clusters, run it on a node of either")
        check_request_paths(params)
        with control_plane(obj, worker_concurrency=params.parallelism) as plane:
            submit(plane.sender, plane.store, params, check_paths=False)
            info, listed, errors = wait_for_end(plane, params, None, lines=True)
            differences = listed or []
    except DmsError as exc:
        fail(exc, as_json)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(request_json(params.request_id, info, errors, differences, key="differences"))
    else:
        for line in differences:
            click.echo(line)
        for e in errors or []:
            click.echo(f"error: {e['path']}: {e['error']}", err=True)
        what = f"{len(differences)} difference(s)" if differences else "no difference"
        click.echo(f"check: {what} between {shown(source)} and {shown(destination)}", err=True)
    if info["state"] != RequestState.SUCCEEDED.value:
        sys.exit(exit_code_of(info))
    if differences:
        sys.exit(EXIT_DIFFERENT)
