"""`dms-submit`: submit, follow and inspect DMS sync requests; its exit codes are EXIT_HELP."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from dms.errors import (
    BrokerUnavailable,
    ConfigError,
    ConfinementError,
    DmsError,
    EmbeddedError,
    PathError,
    RequestError,
)
from dms.fs.names import printable
from dms.model import EndReason

__all__ = ["EXIT_CODES", "EXIT_HELP", "Interrupted", "cli", "exit_code_of", "main", "run"]

#: The exit codes, stable for scripts; shown by `dms-submit --help`.
EXIT_HELP = """\b
Exit codes (stable, for scripts):
  0  success (the request SUCCEEDED, or the command did what it was asked)
  1  the request ended FAILED otherwise (planning failed: a path, the roots)
  2  usage error: an unknown, malformed or contradictory option
  3  bad path: missing source, destination inside the source, ...
  4  unreadable or invalid configuration
  5  the control-plane Redis (broker) is unreachable
  6  the embedded mode cannot start (redis-server missing, another sync running)
  7  request error: unknown request id, id already in use, malformed id
  130 interrupted (Ctrl-C) while waiting; the line says what became of the request
  20 the request was CANCELLED                          (rsync: 20, interrupted)
  23 the request FAILED: some files failed              (rsync: 23, partial transfer)
  24 the request FAILED: only files that vanished from
     the source while it ran                            (rsync: 24)
  25 the request FAILED: --max-delete stopped deletions (rsync: 25)"""

EXIT_CODES: dict[type[DmsError], int] = {
    PathError: 3,
    ConfinementError: 3,
    ConfigError: 4,
    BrokerUnavailable: 5,
    EmbeddedError: 6,
    RequestError: 7,
}
EXIT_REQUEST_FAILED = 1
#: The exit code of a request that ended otherwise than SUCCEEDED, by its end_reason.
EXIT_BY_END_REASON: dict[str, int] = {
    EndReason.CANCELLED: 20,
    EndReason.FILES: 23,
    EndReason.VANISHED: 24,
    EndReason.MAX_DELETE: 25,
}


def exit_code_of(info: dict[str, Any]) -> int:
    """0 for a SUCCEEDED request, else the code of why it ended (EXIT_HELP)."""
    if info.get("state") == "SUCCEEDED":
        return 0
    if info.get("state") == "CANCELLED":
        return EXIT_BY_END_REASON[EndReason.CANCELLED]
    return EXIT_BY_END_REASON.get(str(info.get("end_reason") or ""), EXIT_REQUEST_FAILED)


class DmsCliError(click.ClickException):
    """A DmsError shown as one line, with the exit code of its class."""

    def __init__(self, error: DmsError) -> None:
        super().__init__(printable(str(error)))  # a newline in a path never splits the line
        code = next((code for cls, code in EXIT_CODES.items() if isinstance(error, cls)), 1)
        self.exit_code = code  # type: ignore[misc]  # click declares it a ClassVar; per instance is intended


class Interrupted(click.ClickException):
    """Ctrl-C while a command waits on a request: say what became of it and how to go on.
    Exit 130, as a shell reports an interrupted command."""

    exit_code = 130

    def __init__(self, request_id: str, *, embedded: bool = False, watching: bool = False) -> None:
        rid = printable(request_id)
        if embedded:
            what = f"stopped with this command's embedded worker; continue it with `dms-submit resume {rid}`"
        else:
            what = (f"{'is unchanged' if watching else 'keeps running'}; follow it with `dms-submit watch {rid}`, "
                    f"stop it with `dms-submit cancel {rid}`")  # fmt: skip
        super().__init__(f"interrupted: request {rid} {what}")


class DmsGroup(click.Group):
    """click's group, with every error it reports itself (usage errors) on printable lines:
    an odd value echoed back (a newline in a path) never splits or garbles the error line."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        run: Any = super().main
        if not standalone_mode:
            return run(*args, standalone_mode=False, **kwargs)
        try:
            result = run(*args, standalone_mode=False, **kwargs)
        except click.ClickException as exc:
            exc.message = printable(exc.message)  # type: ignore[misc]  # final in click's stubs; set once here
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=DmsGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_HELP)
@click.version_option(package_name="dms", prog_name="dms-submit", message="%(prog)s %(version)s")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="DMS_CONFIG",
    help="DMS configuration file (workers.yml); its `control:` section names the broker.",
)
@click.option("--broker", "broker_url", envvar="DMS_BROKER_URL", help="Broker URL, e.g. redis://host:6379/0.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, broker_url: str | None) -> None:
    """Submit and follow DMS syncs. With no broker configured, runs embedded on this machine."""
    ctx.obj = {"config_path": config_path, "broker_url": broker_url}


def main(argv: list[str] | None = None) -> Any:
    from dms.cli import cancel, check, listing, logs, resume, status, sync, watch  # noqa: F401  (registers the subcommands)

    try:
        return cli.main(args=argv, prog_name="dms-submit", standalone_mode=True)
    except DmsError as exc:  # pragma: no cover - subcommands convert; this is the safety net
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


def run() -> None:
    """The `dms-submit` entry point: main(), then exit without CPython's orderly shutdown.

    Once a command is done, all that is left is what the kernel frees anyway (the Redis
    sockets, memory; the embedded services were stopped inside main()). Tearing down the
    Celery, kombu and redis-py modules would only delay the exit (figures in decision
    0024), so stdio is flushed and the process ends with os._exit. main() itself returns
    normally, for callers that loop over it.
    """
    code: int
    try:
        main()
        code = 0
    except SystemExit as exc:  # click's standalone mode always ends here
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`dms-submit list | head`): nothing to save
            code = code or 1
    os._exit(code)
