"""Every dms-submit command with generated odd arguments.

The rule, for whatever hypothesis puts on the command line: a documented exit code (0-7),
no traceback, an error in one line (`Error: ...`; click's usage errors add their usage
lines), and nothing created or changed anywhere in the scratch tree, but, for a sync that
was accepted (exit 0 or 1), below the destination it names. The commands run in process
(click's CliRunner) against the session's Redis, in service mode, so an accepted sync is
planned and run by the session's worker.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from dms.cli import EXIT_BY_END_REASON, EXIT_REQUEST_FAILED, cli
from tests.generative import REPORT, profile, tally
from tests.services import RedisServer
from tests.trees import meta_snapshot

pytestmark = pytest.mark.usefixtures("worker")

#: Exit codes of a request that ran and ended otherwise than SUCCEEDED (no `Error:` line).
REQUEST_ENDED = {EXIT_REQUEST_FAILED, *EXIT_BY_END_REASON.values()}
COMMANDS = ["sync", "check", "status", "list", "logs", "cancel", "resume", "watch"]
RULE_FILES = ["-", "", "/dev/null", "/proc/self", "/proc/1/mem", "/nope", "/etc/hostname"]
#: Strings a careless or hostile user types where a path or a request id goes: empty, dashes,
#: pseudo-filesystems, traversal, huge, undecodable, control characters, shell syntax.
ODD = [
    "",
    " ",
    "-",
    "--",
    "-x",
    ".",
    "..",
    "../..",
    "/",
    "//",
    "/proc/self",
    "/proc/1/mem",
    "/dev/null",
    "/sys/kernel",
    "~",
    "a" * 5000,
    "x/" * 3000,
    "\udcff\udcfe",
    "new\nline",
    "tab\t",
    "*",
    "$(id)",
    "'; rm -rf /",
    "a:b",
    "i" * 300,
]
#: Options of each command, with odd values (out of range, malformed, empty) beside good ones.
NUMBERS = ["0", "-1", "1", "3", "1e9", "99999999999999999999", "nan", "", "x"]
SIZES = ["-5", "0", "1", "1PiB", "lots", "64MiB", "", "1k"]
OPTIONS: dict[str, list[tuple[str, list[str] | None]]] = {
    "sync": [
        ("--parallelism", NUMBERS),
        ("--chunk-size", SIZES),
        ("--max-delete", NUMBERS),
        ("--id", ODD),
        ("--include", ["[", "", "**/***", "*", "/"]),
        ("--exclude", ["[", "", "*", "/"]),
        ("--from", ["A", "", "nope"]),
        ("--to", ["B", ""]),
        ("--direction", ["X", "A_TO_", "A_TO_B", ""]),
        ("--scheduler", ["nope", "", "round_robin"]),
        ("--copy-method", ["mmap", "", "readwrite"]),
        ("--delete", None),
        ("--dry-run", None),
        ("--json", None),
        ("--wait", None),
        ("-c", None),
        ("-I", None),
        ("-D", None),
        ("--no-xattrs", None),
        ("--no-fsync", None),
        ("-i", None),
        ("--include-from", RULE_FILES),
        ("--exclude-from", RULE_FILES),
        ("--files-from", RULE_FILES),
        ("--bwlimit", ["0", "-1", "1M", "fast", "", "1.5G", "100"]),
    ],
    "check": [("--id", ODD), ("--include", ["[", "", "*", "/"]), ("--exclude", ["[", "*"]), ("--json", None)],
    "status": [("--json", None), ("--files", None)],
    "list": [
        ("--since", ["-1d", "forever", "", "1d", "0s"]),
        ("--limit", NUMBERS),
        ("--state", ["BOGUS", "", "FAILED"]),
        ("--json", None),
    ],
    "logs": [("--json", None)],
    "cancel": [("--wait", None), ("--json", None)],
    "resume": [("--force", None), ("--wait", None), ("--json", None)],
    "watch": [("--json", None), ("--plain", None), ("--interval", ["0", "-1", "nan", "0.1", ""])],
}


@st.composite
def command_lines(draw: st.DrawFn, paths: list[str]) -> tuple[list[str], str, list[str]]:
    """A command line (a command, its positional arguments, sometimes too few or too many, and
    options), the command, and the positional arguments as drawn."""
    command = draw(st.sampled_from(COMMANDS))
    wanted = {"sync": 2, "check": 2, "list": 0}.get(command, 1)
    count = draw(st.sampled_from([wanted, wanted, wanted, max(0, wanted - 1), wanted + 1]))
    pool = [*paths, *ODD] if command in ("sync", "check") else [*ODD, "no-such-request"]
    positional = [draw(st.sampled_from(pool)) for _ in range(count)]
    options: list[str] = []
    for _ in range(draw(st.integers(0, 3))):
        name, values = draw(st.sampled_from(OPTIONS[command]))
        options += [name] if values is None else [name, draw(st.sampled_from(values))]
    head = draw(st.sampled_from([[], [], [], ["--config"], ["--broker"]]))
    if head:  # the group's own options, with odd values too
        head = [*head, draw(st.sampled_from([*paths, *ODD, "redis://127.0.0.1:1/0", "unix:///nope", "redis://"]))]
    # after `--`, a leading dash is a path or an id, not an option; a positional "--" is one
    # only after a first `--` (before it, it ends the options and makes the next token a
    # positional: `sync SRC -- --delete` syncs into ./--delete, as rsync would)
    if "--" in positional or draw(st.booleans()):
        return [*head, command, *options, "--", *positional], command, positional
    return [*head, command, *positional, *options], command, positional


def scratch_tokens(root: Path) -> list[str]:
    return [str(root / "src"), str(root / "src" / "file"), str(root / "dst"), str(root / "missing"),
            str(root / "src" / "sub"), str(root / "plain.txt"), str(root / "plain.txt" / "x")]  # fmt: skip


@pytest.mark.timeout(900)
def test_every_command_with_odd_arguments(tmp_path: Path, redis_server: RedisServer, monkeypatch: Any) -> None:
    import dms.cli.cancel
    import dms.cli.check
    import dms.cli.listing
    import dms.cli.logs
    import dms.cli.resume
    import dms.cli.status
    import dms.cli.sync
    import dms.cli.watch  # noqa: F401  (each registers its subcommand)

    root = tmp_path / "scratch"
    (root / "src" / "sub").mkdir(parents=True)
    (root / "src" / "file").write_text("data")
    (root / "plain.txt").write_text("a file")
    (root / "cwd").mkdir()
    (root / "cwd" / "precious").write_text("keep")
    monkeypatch.chdir(root / "cwd")
    for key in [k for k in os.environ if k.startswith("DMS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("DMS_BROKER_URL", redis_server.broker_url)
    monkeypatch.setenv("DMS_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    from dms.state.requests import RequestStore, connect

    store = RequestStore(connect(redis_server.state_url))
    codes: dict[int, int] = {}

    @given(line=command_lines(scratch_tokens(root)))
    @profile(ci=1500, long=50000)
    def check(line: tuple[list[str], str, list[str]]) -> None:
        argv, command, positional = line
        with tally("fuzz: dms-submit arguments"):
            before = meta_snapshot(root)
            if command == "watch" and "--" not in argv:
                argv = [*argv, "--interval", "0.1"]
            known = {r["request_id"] for r in store.list_requests(limit=100)}
            result = runner.invoke(cli, argv, catch_exceptions=True)
            if command in ("sync", "check", "resume"):
                _settle(store, known - set(positional))  # an accepted request runs on after the command returns
            code = result.exit_code
            codes[code] = codes.get(code, 0) + 1
            assert result.exception is None or isinstance(result.exception, SystemExit), (argv, result.exception)
            assert code in range(8) or code in REQUEST_ENDED, (argv, code, result.stderr)
            assert "Traceback" not in result.output and "Traceback" not in result.stderr, argv
            if code >= 2 and code not in REQUEST_ENDED:
                errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
                assert len(errors) == 1 and result.stderr.splitlines()[-1] == errors[0], (argv, result.stderr)
                if code > 2:
                    assert result.stderr.count("\n") == 1, (argv, result.stderr)
            after = meta_snapshot(root)
            changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
            if command == "sync" and (code == 0 or code in REQUEST_ENDED):
                destination = _destination(positional, root)
                changed = {k for k in changed if not _under(root / k, destination)}
            assert not changed, (argv, code, sorted(changed)[:5])

    try:
        check()
    finally:
        REPORT["fuzz: dms-submit arguments"].notes.append(f"exit codes: {dict(sorted(codes.items()))}")


def _destination(positional: list[str], root: Path) -> Path | None:
    if len(positional) < 2:
        return None
    return Path(os.path.abspath(os.path.join(root / "cwd", positional[1])))


def _under(path: Path, destination: Path | None) -> bool:
    if destination is None:
        return False
    p = os.path.normpath(path)
    d = os.path.normpath(destination)
    return p == d or p.startswith(d + "/") or d.startswith(p + "/")  # the destination's parents are made too


def _settle(store: Any, known: set[str], timeout: float = 120.0) -> None:
    """Wait until no request but those in `known` is still running (resumed ones included)."""
    import time

    from dms.model import TERMINAL_STATES, RequestState

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [r for r in store.list_requests(limit=100)
                   if RequestState(r["state"]) not in TERMINAL_STATES and r["request_id"] not in known]  # fmt: skip
        if not running:
            return
        time.sleep(0.05)
    raise AssertionError(f"requests still running after {timeout} s: {running[:3]}")
