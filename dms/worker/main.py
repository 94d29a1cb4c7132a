"""`dms-worker NODE`: start the Celery worker of one node of workers.yml, the Celery way.

It execs `celery -A dms worker` with the node's explicit queue list (its
cluster queue, its node queue and one queue per data-plane NIC), the node's
concurrency, a unique node name and `--dms-node NODE`, which turns on the
bootstep that runs the data receiver and the heartbeat. Anything after `--`
goes to celery unchanged (`dms-worker a1 -- --loglevel debug`).
"""

from __future__ import annotations

import os
import sys

import click

from dms.config import load_config, read_secrets
from dms.errors import ConfigError
from dms.route.queues import node_queues
from dms.settings import redacted
from dms.worker.logs import json_logs_wanted

__all__ = ["celery_argv", "check_config", "main"]


def celery_argv(config_path: str, node_name: str, extra: tuple[str, ...] = ()) -> list[str]:
    node = load_config(config_path).node(node_name)
    queues = ",".join(q.name for q in node_queues(node))
    quiet = ["-q"] if json_logs_wanted() else []  # no banner among the JSON lines
    return [
        sys.executable, "-m", "celery", *quiet, "-A", "dms", "worker",
        "-n", f"{node.name}@%h",
        "-Q", queues,
        "-c", str(node.concurrency),
        "--dms-node", node.name,
        "--prefetch-multiplier", "1",
        "--without-mingle", "--without-gossip",
        "-E",
        *extra,
    ]  # fmt: skip


def check_config(config_path: str, only: str | None = None) -> list[str]:
    """What `dms-worker --check` prints: the file validated (ConfigError otherwise), then per
    node (or only node `only`) its queues, the addresses its receiver listens on, its
    control interface, roots and secret file, and whether that file is readable here."""
    config = load_config(config_path)
    nodes = [n for c in config.clusters.values() for n in c.nodes]
    if only is not None:
        nodes = [config.node(only)]
    lines = [f"{config_path}: valid; {len(config.clusters)} cluster(s), "
             f"{sum(len(c.nodes) for c in config.clusters.values())} node(s); "
             f"broker {redacted(config.control.broker_url or '(embedded)')}"]  # fmt: skip
    for node in nodes:
        try:
            read_secrets(node, config.path)
            secret = f"{node.secret_file} (readable here)"
        except ConfigError as exc:
            secret = f"{node.secret_file or '-'} (not usable here: {exc})"
        listens = ", ".join(f"{n.address}:{node.port} ({n.interface}{', ' + n.network if n.network else ''})"
                            for n in node.data)  # fmt: skip
        control = f"{node.control.interface} {node.control.address}" if node.control else "-"
        lines += [
            f"node {node.name} (cluster {node.cluster}), concurrency {node.concurrency}",
            f"  queues   {', '.join(q.name for q in node_queues(node))}",
            f"  listens  {listens or '-'}",
            f"  control  {control}",
            f"  roots    {', '.join(node.roots) or '-'}",
            f"  secret   {secret}",
        ]
    return lines


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("node", required=False)
@click.option("--config", "config_path", envvar="DMS_CONFIG", required=True, type=click.Path(dir_okay=False),
              help="workers.yml (default: $DMS_CONFIG).")  # fmt: skip
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.option("--check", is_flag=True,
              help="Validate the file and print, per node (or NODE), its queues, listening addresses, roots and "
                   "secret file; start nothing. Exit 0 if valid, 4 if not.")  # fmt: skip
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def main(node: str | None, config_path: str, loglevel: str, check: bool, celery_args: tuple[str, ...]) -> None:
    """Start the DMS worker of NODE (a node name under `clusters:` in workers.yml)."""
    if check:
        try:
            click.echo("\n".join(check_config(config_path, node)))
        except ConfigError as exc:
            click.echo(f"dms-worker: {exc}", err=True)
            sys.exit(4)
        return
    if not node:
        raise click.UsageError("NODE is required (a node name under `clusters:`), or --check")
    try:
        argv = celery_argv(config_path, node, ("--loglevel", loglevel, *celery_args))
    except ConfigError as exc:
        click.echo(f"dms-worker: {exc}", err=True)
        sys.exit(4)
    os.environ["DMS_CONFIG"] = os.path.abspath(config_path)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
