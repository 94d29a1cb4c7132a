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

from dms.config import load_config
from dms.errors import ConfigError
from dms.route.queues import node_queues

__all__ = ["celery_argv", "main"]


def celery_argv(config_path: str, node_name: str, extra: tuple[str, ...] = ()) -> list[str]:
    node = load_config(config_path).node(node_name)
    queues = ",".join(q.name for q in node_queues(node))
    return [
        sys.executable, "-m", "celery", "-A", "dms", "worker",
        "-n", f"{node.name}@%h",
        "-Q", queues,
        "-c", str(node.concurrency),
        "--dms-node", node.name,
        "--prefetch-multiplier", "1",
        "--without-mingle", "--without-gossip",
        "-E",
        *extra,
    ]  # fmt: skip


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("node")
@click.option("--config", "config_path", envvar="DMS_CONFIG", required=True, type=click.Path(dir_okay=False),
              help="workers.yml (default: $DMS_CONFIG).")  # fmt: skip
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def main(node: str, config_path: str, loglevel: str, celery_args: tuple[str, ...]) -> None:
    """Start the DMS worker of NODE (a node name under `clusters:` in workers.yml)."""
    try:
        argv = celery_argv(config_path, node, ("--loglevel", loglevel, *celery_args))
    except ConfigError as exc:
        click.echo(f"dms-worker: {exc}", err=True)
        sys.exit(4)
    os.environ["DMS_CONFIG"] = os.path.abspath(config_path)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
