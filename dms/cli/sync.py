"""`dms-submit sync SRC DST`: make DST a copy of the tree SRC (like `rsync -a SRC/ DST/`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from dms.cli import Interrupted, cli, exit_code_of
from dms.cli.connection import control_plane, fail
from dms.cli.display import ProgressDisplay
from dms.cli.render import request_json, request_lines
from dms.cli.types import RATE, SIZE
from dms.cli.untaken import UntakenWarning, both
from dms.client.connect import ControlPlane
from dms.client.submit import check_request_paths, submit, wait
from dms.config import DefaultsConfig, load_config
from dms.errors import ConfigError, DmsError
from dms.fs.names import printable
from dms.model import RequestState, SyncParams
from dms.options import OPTIONS, Option
from dms.request import make_params

#: Seconds between progress lines of `sync --wait` when stderr is not a terminal.
PLAIN_PROGRESS_SECONDS = 30.0

__all__ = ["sync"]

F = TypeVar("F", bound=Callable[..., Any])


class _OrderedFilters(click.Command):
    """Remembers the command-line order of --include/--exclude: rsync applies the first
    matching rule, so `--include '*/' --include '*.c' --exclude '*'` must keep its order."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        parser = self.make_parser(ctx)
        _, _, order = parser.parse_args(args=list(args))
        ctx.meta["dms_param_order"] = [p.name for p in order]
        return super().parse_args(ctx, args)


def _ordered_rules(ctx: click.Context, given: dict[str, tuple[str, ...]]) -> list[tuple[str, str]]:
    """The filter rules in command-line order: each --include/--exclude is one rule, each
    --include-from/--exclude-from FILE the rules of its lines, where it stood."""
    pending = {name: list(given.get(name, ())) for name in FILTER_FLAGS}
    rules: list[tuple[str, str]] = []

    def add(name: str, value: str) -> None:
        sign = "+" if name.startswith("include") else "-"
        rules.extend(rules_of_file(value, sign) if name.endswith("_from") else [(sign, value)])

    for name in ctx.meta.get("dms_param_order", []):
        if pending.get(name):
            add(name, pending[name].pop(0))
    for name in FILTER_FLAGS:  # not seen by the order scan (a caller building the context itself)
        for value in pending[name]:
            add(name, value)
    return rules


#: The command-line flags that make filter rules, by parameter name.
FILTER_FLAGS = ("include", "exclude", "include_from", "exclude_from")


def rules_of_file(path: str, sign: str) -> list[tuple[str, str]]:
    """The rules of an --include-from/--exclude-from file ("-": stdin), as rsync reads one:
    a pattern per line; blank lines and lines starting with ";" or "#" are skipped; a line
    starting with "+ " or "- " is an include or exclude rule whatever the option. Names are
    bytes: a line that is not UTF-8 matches the name it spells (os.fsdecode)."""
    rules = []
    for line in _lines_of_file(path, "rules file"):
        if line[:2] in ("+ ", "- "):
            rules.append((line[0], line[2:]))
        else:
            rules.append((sign, line))
    return rules


def wait_for_end(
    plane: ControlPlane, params: SyncParams, show: ProgressDisplay | None, *, lines: bool
) -> tuple[dict[str, Any], list[str] | None, list[dict[str, Any]] | None]:
    """Wait for a submitted request to end, as `sync --wait` and `check` do: progress to
    `show`, a warning on stderr while no worker takes it (service mode), Ctrl-C as
    Interrupted (which says how to resume). Returns the ended record, its dry-run or
    itemized lines if `lines`, and its first errors if files failed."""
    embedded = plane.embedded is not None
    try:
        untaken = None if embedded else UntakenWarning(plane.store, params.request_id, sys.stderr)
        info = wait(plane.store, params.request_id, on_progress=both(show, untaken), alive=plane.alive)
    except KeyboardInterrupt:
        raise Interrupted(params.request_id, embedded=embedded) from None
    listed = plane.store.dryrun(params.request_id) if lines else None
    errors = plane.store.errors(params.request_id, limit=20) if info["files_failed"] else None
    return info, listed, errors


def paths_of_file(path: str) -> list[str]:
    """The paths of a --files-from file ("-": stdin), one per line, as rsync reads one: blank
    lines and lines starting with ";" or "#" are skipped; names are bytes (os.fsdecode)."""
    return _lines_of_file(path, "--files-from file")


def _lines_of_file(path: str, what: str) -> list[str]:
    """The lines of a list file ("-": stdin) but blank ones and ";" or "#" comments."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except OSError as exc:
        raise click.UsageError(f"cannot read the {what} {printable(path)}: {exc.strerror}") from None
    lines = (os.fsdecode(raw.rstrip(b"\r")) for raw in data.splitlines())
    return [line for line in lines if line and line[0] not in ";#"]


def _click_option(option: Option) -> Callable[[F], F]:
    """The click option of one request option of the table (dms.options)."""
    flags = [option.cli, option.short] if option.short else [option.cli]
    kwargs: dict[str, Any] = {"help": option.help, "metavar": option.metavar}
    if option.kind == "flag":
        kwargs["is_flag"] = True
    elif option.kind == "int":
        kwargs["type"] = click.IntRange(option.low, option.high)
    elif option.kind == "count":
        kwargs["type"] = click.IntRange(0)
    elif option.kind == "size":
        kwargs["type"] = SIZE
    elif option.kind == "rate":
        kwargs["type"] = RATE
    elif option.kind == "choice":
        kwargs.update(type=click.Choice(list(option.choices)), default=option.default, show_default=True)
    elif option.kind == "patterns":
        kwargs["multiple"] = True
    return click.option(*flags, option.name, **kwargs)


def _request_options(command: F) -> F:
    """Every request option that has a command-line spelling, in the table's order."""
    for option in reversed([o for o in OPTIONS if o.cli]):
        command = _click_option(option)(command)
    return command


def _from_command_line(ctx: click.Context, given: dict[str, Any]) -> dict[str, Any]:
    """make_params options from the parsed command line: a negated flag turns its option
    off, rules keep their command-line order, and what is not given is left out (for
    workers.yml's defaults, then the table's)."""
    options: dict[str, Any] = {}
    patterns: dict[str, tuple[str, ...]] = {}
    from_files = {name: tuple(given.get(name) or ()) for name in ("include_from", "exclude_from")}
    for option in OPTIONS:
        if not option.cli:
            continue
        value = given[option.name]
        if option.kind == "patterns":
            patterns[option.name] = value
        elif option.negate:
            options[option.name] = not value
        elif value is not None:
            options[option.name] = value
    options["filters"] = _ordered_rules(ctx, {**patterns, **from_files})
    if given.get("files_from_file"):
        options["files_from"] = paths_of_file(given["files_from_file"])
    return options


@cli.command(cls=_OrderedFilters)
@click.argument("source")  # plain strings: dms.fs.paths checks them, with one style of message and exit 3
@click.argument("destination")
@click.option("--id", "request_id", help="Request id (default: generated, e.g. 20261124-191500-3fa9c1).")
@_request_options
@click.option(
    "--include-from",
    "include_from",
    multiple=True,
    metavar="FILE",
    help="Include the patterns in FILE, one per line (rsync's form; - for stdin; repeatable).",
)
@click.option(
    "--exclude-from",
    "exclude_from",
    multiple=True,
    metavar="FILE",
    help="Exclude the patterns in FILE, one per line (rsync's form; - for stdin; repeatable).",
)
@click.option(
    "--files-from",
    "files_from_file",
    metavar="FILE",
    help="Only the paths in FILE, relative to SOURCE, one per line (rsync's form; - for stdin): the "
    "directories on the way are made, a listed directory is not descended into (list it as DIR/ for its "
    "immediate contents).",
)
@click.option("--wait", "wait_", is_flag=True, help="Wait for the end; exit 0 only if the sync SUCCEEDED.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def sync(
    obj: dict[str, str | None],
    /,
    source: str,
    destination: str,
    request_id: str | None,
    wait_: bool,
    as_json: bool,
    **given: Any,
) -> None:
    """Copy the tree SOURCE into DESTINATION, verified, published file by file atomically.

    Like rsync, files already at the destination with the same size, mtime and mode are
    skipped (see --ignore-times).

    --checksum, --delete, --max-delete, --dry-run, --include and --exclude behave like
    rsync's (docs/operations.md, "rsync semantics"). Symbolic links are copied as links,
    hard links inside the tree stay links, owner (as root), extended attributes and
    sparse files are kept, like rsync -aHAXS.

    Between clusters (--from A --to B), SOURCE is a path on cluster A and DESTINATION a
    path on cluster B; source-cluster workers push the bytes to destination-cluster
    receivers over the data-plane NICs of workers.yml.

    With no broker configured (no --broker, DMS_BROKER_URL or --config), the sync runs
    embedded: a private redis-server and a local worker are started for it and stopped
    afterwards, so the command always waits.
    """
    try:
        config_path = obj.get("config_path")
        defaults = load_config(config_path).defaults if config_path else DefaultsConfig()
        options = _from_command_line(click.get_current_context(), given)
        params = make_params(source, destination, request_id=request_id, defaults=defaults, **options)
        if params.clustered and not config_path:
            raise ConfigError("--from/--to need the workers.yml that defines the clusters (--config or DMS_CONFIG)")
        if params.scheduler:
            from dms.route.policies import get_policy  # here: it loads the NIC registry (redis-py)

            get_policy(params.scheduler)  # an unknown name is refused here, not in a worker
        if params.clustered:
            os.environ["DMS_CONFIG"] = os.path.abspath(config_path or "")  # for the roots check in submit()
        check_request_paths(params)  # before the embedded services start for nothing
        with control_plane(obj, worker_concurrency=params.parallelism) as plane:
            submit(plane.sender, plane.store, params, check_paths=False)  # checked above
            embedded = plane.embedded is not None
            if not (wait_ or embedded):
                click.echo(
                    request_json(params.request_id, plane.store.get(params.request_id) or {})
                    if as_json
                    else params.request_id
                )
                return
            # live progress on stderr, so stdout keeps only the result (scripts parse it): a redrawn
            # block on a terminal, else a plain line every PLAIN_PROGRESS_SECONDS and at each state
            # change (as rclone's --stats lines in a log), none with --json
            mode = "none" if as_json else "tty" if sys.stderr.isatty() else "plain"
            show = (
                None if mode == "none" else ProgressDisplay(params.request_id, sys.stderr, mode, PLAIN_PROGRESS_SECONDS)
            )
            info, would, errors = wait_for_end(plane, params, show, lines=params.dry_run or params.itemize)
            lines_key = "dry_run_lines" if params.dry_run else "changes"
            if would is not None and not as_json:
                for line in would:
                    click.echo(line)
            click.echo(
                request_json(params.request_id, info, errors, would, key=lines_key)
                if as_json
                else "\n".join(request_lines(params.request_id, info, errors))
            )
    except DmsError as exc:
        fail(exc, as_json)
    except ValueError as exc:  # make_params: contradictory or malformed options, a usage error
        raise click.UsageError(str(exc)) from None
    if info["state"] != RequestState.SUCCEEDED.value:
        sys.exit(exit_code_of(info))
