"""`dms-submit sync SRC DST`: make DST a copy of the tree SRC (like `rsync -a SRC/ DST/`)."""

from __future__ import annotations

import os
import sys

import click

from dms.cli import EXIT_REQUEST_FAILED, cli
from dms.cli.connection import control_plane, fail
from dms.cli.display import ProgressDisplay
from dms.cli.options import SIZE
from dms.cli.render import request_json, request_lines
from dms.client import check_request_paths, new_request_id, submit, wait
from dms.config import DefaultsConfig, load_config
from dms.errors import ConfigError, DmsError, RequestError
from dms.model import RequestState, make_params

__all__ = ["sync"]


class _OrderedFilters(click.Command):
    """Remembers the command-line order of --include/--exclude: rsync applies the first
    matching rule, so `--include '*/' --include '*.c' --exclude '*'` must keep its order."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        parser = self.make_parser(ctx)
        _, _, order = parser.parse_args(args=list(args))
        ctx.meta["dms_param_order"] = [p.name for p in order]
        return super().parse_args(ctx, args)


def _ordered_rules(ctx: click.Context, include: tuple[str, ...], exclude: tuple[str, ...]) -> list[tuple[str, str]]:
    pending = {"include": list(include), "exclude": list(exclude)}
    rules = []
    for name in ctx.meta.get("dms_param_order", []):
        if pending.get(name):
            rules.append(("+" if name == "include" else "-", pending[name].pop(0)))
    rules += [("+", p) for p in pending["include"]] + [("-", p) for p in pending["exclude"]]
    return rules


@cli.command(cls=_OrderedFilters)
@click.argument("source")  # plain strings: dms.paths checks them, with one style of message and exit 3
@click.argument("destination")
@click.option("--id", "request_id", help="Request id (default: generated, e.g. 20261124-191500-3fa9c1).")
@click.option("--parallelism", "-p", type=click.IntRange(1, 1024), help="Transfer tasks in flight at once.")
@click.option("--chunk-size", type=SIZE, help="Largest piece of one file per task, e.g. 64MiB (default).")
@click.option(
    "--copy-method",
    type=click.Choice(["readwrite", "copy_file_range"]),
    default="copy_file_range",
    show_default=True,
    help="How bytes move on one node; copy_file_range falls back to readwrite where the kernel "
    "refuses (docs/decisions/0003-copy-method.md).",
)
@click.option(
    "--ignore-times", "-I", is_flag=True, help="Copy every file, even those whose size, mtime and mode match."
)
@click.option("--from", "source_cluster", metavar="CLUSTER", help="Cluster that holds SOURCE (with --to).")
@click.option("--to", "destination_cluster", metavar="CLUSTER", help="Cluster that receives DESTINATION.")
@click.option("--direction", metavar="A_TO_B", help="Same as --from A --to B (the reference design's spelling).")
@click.option("--scheduler", metavar="POLICY", help="Scheduler policy (default: workers.yml defaults.scheduler).")
@click.option("--checksum", "-c", is_flag=True, help="Skip files by content (XXH3 of both copies), not size+mtime.")
@click.option("--delete", is_flag=True, help="Delete destination entries that are not in the source (each is logged).")
@click.option("--max-delete", type=click.IntRange(0), metavar="N", help="With --delete: delete at most N entries.")
@click.option("--dry-run", "-n", is_flag=True, help="Show what would be copied, updated and deleted; change nothing.")
@click.option("--include", multiple=True, metavar="PATTERN", help="Include what matches (rsync rules; repeatable).")
@click.option("--exclude", multiple=True, metavar="PATTERN", help="Exclude what matches (rsync rules; repeatable).")
@click.option("--specials", "-D", is_flag=True, help="Recreate fifos, sockets and (as root) devices (rsync -D).")
@click.option("--no-xattrs", is_flag=True, help="Do not copy extended attributes (and ACLs).")
@click.option("--no-fsync", is_flag=True, help="Do not flush data to disk before publishing (faster, less safe).")
@click.option("--wait", "wait_", is_flag=True, help="Wait for the end; exit 0 only if the sync SUCCEEDED.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def sync(
    obj: dict[str, str | None],
    source: str,
    destination: str,
    request_id: str | None,
    parallelism: int | None,
    chunk_size: int | None,
    copy_method: str,
    ignore_times: bool,
    source_cluster: str | None,
    destination_cluster: str | None,
    direction: str | None,
    scheduler: str | None,
    checksum: bool,
    delete: bool,
    max_delete: int | None,
    dry_run: bool,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    no_xattrs: bool,
    specials: bool,
    no_fsync: bool,
    wait_: bool,
    as_json: bool,
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
        clustered = bool(source_cluster or destination_cluster or direction)
        if clustered and not config_path:
            raise ConfigError("--from/--to need the workers.yml that defines the clusters (--config or DMS_CONFIG)")
        if scheduler:
            from dms.scheduling import get_policy  # here: it loads the NIC registry (redis-py)

            get_policy(scheduler)  # an unknown name is refused here, not in a worker
        if clustered:
            os.environ["DMS_CONFIG"] = os.path.abspath(config_path or "")  # for the roots check in submit()
        params = make_params(
            source,
            destination,
            request_id=request_id or new_request_id(),
            parallelism=parallelism or defaults.parallelism,
            chunk_size=chunk_size or defaults.chunk_size,
            copy_method=copy_method,
            fsync=not no_fsync,
            ignore_times=ignore_times,
            source_cluster=source_cluster,
            destination_cluster=destination_cluster,
            direction=direction,
            scheduler=scheduler,
            checksum=checksum,
            delete=delete,
            max_delete=max_delete,
            dry_run=dry_run,
            xattrs=not no_xattrs,
            specials=specials,
            filters=_ordered_rules(click.get_current_context(), include, exclude),
        )
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
            # live progress on stderr, so stdout keeps only the result (scripts parse it)
            mode = "tty" if sys.stderr.isatty() and not as_json else "none"
            show = ProgressDisplay(params.request_id, sys.stderr, mode) if mode == "tty" else None
            info = wait(plane.store, params.request_id, on_progress=show, alive=plane.alive)
            would = plane.store.dryrun(params.request_id) if params.dry_run else None
            if would is not None and not as_json:
                for line in would:
                    click.echo(line)
            errors = plane.store.errors(params.request_id, limit=20) if info["files_failed"] else None
            click.echo(
                request_json(params.request_id, info, errors, would)
                if as_json
                else "\n".join(request_lines(params.request_id, info, errors))
            )
    except DmsError as exc:
        fail(exc)
    except ValueError as exc:  # make_params: contradictory or malformed options
        fail(RequestError(str(exc)))
    if info["state"] != RequestState.SUCCEEDED.value:
        sys.exit(EXIT_REQUEST_FAILED)
