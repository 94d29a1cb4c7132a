"""The option table is the one list of request options: the CLI, make_params and SyncParams follow it."""

from __future__ import annotations

import dataclasses
import re

import click
import pytest
from click.testing import CliRunner

from dms.cli import cli
from dms.cli.sync import sync
from dms.config import DefaultsConfig
from dms.errors import RequestError
from dms.fs.filters import RuleSet
from dms.model import SyncParams
from dms.options import OPTIONS
from dms.request import check_request_id, make_params, task_request_id


def test_the_command_line_offers_exactly_the_table_options_with_a_flag() -> None:
    # besides the table: how the caller waits, and list files (read into `filters` and
    # `files_from` by the CLI)
    own = {"request_id", "wait_", "as_json", "include_from", "exclude_from", "files_from_file"}
    offered = {p.name for p in sync.params if isinstance(p, click.Option)} - own
    assert offered == {o.name for o in OPTIONS if o.cli}
    for option in OPTIONS:
        if option.cli:
            param = next(p for p in sync.params if p.name == option.name)
            assert option.cli in param.opts and option.help == param.help


def test_sync_params_take_their_defaults_from_the_table() -> None:
    fields = {f.name: f.default for f in dataclasses.fields(SyncParams)}
    shared = [o for o in OPTIONS if o.name in fields]
    assert len(shared) >= 12
    for option in shared:
        assert fields[option.name] == option.default, option.name


def test_make_params_accepts_every_table_option_and_refuses_others(tmp_path: object) -> None:
    values = {"parallelism": 2, "chunk_size": "1MiB", "copy_method": "readwrite", "max_delete": 3,
              "include": ["*.c"], "exclude": ["*"], "filters": [("+", "*/")], "scheduler": "round_robin",
              "control_queue": "q.c", "data_queue": "q.d"}  # fmt: skip
    for option in OPTIONS:
        if option.name in ("source_cluster", "destination_cluster", "direction"):
            continue  # a pair; covered below
        value = values.get(option.name, not option.default if option.kind == "flag" else option.default)
        make_params("/a", "/b", **{option.name: value})
    params = make_params("/a", "/b", direction="A_TO_B")
    assert (params.source_cluster, params.destination_cluster) == ("A", "B")
    with pytest.raises(ValueError, match=r"unknown option.*paralellism"):
        make_params("/a", "/b", paralellism=2)


@pytest.mark.parametrize(
    "bad",
    ["", "a b", "a/b", "x:y", "*", "a[bc]d", "back\\slash", "é", "..", "x" * 201, "tab\there", "nl\n", "\x01", 7, None],
)
def test_request_ids_are_checked_in_one_place(bad: object) -> None:
    with pytest.raises(RequestError):
        check_request_id(bad)
    if isinstance(bad, str):
        with pytest.raises(RequestError):
            make_params("/a", "/b", request_id=bad)


def test_generated_and_task_derived_ids_pass_the_check() -> None:
    assert make_params("/a", "/b").request_id
    assert task_request_id("9f1c-aa") == "sync-9f1c-aa"


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"delete": "no"}, "delete must be True or False"),
        ({"xattrs": 1}, "xattrs must be True or False"),
        ({"chunk_size": True}, "chunk_size must be a number of bytes"),
        ({"chunk_size": 1.5}, "chunk_size must be a number of bytes"),
        ({"chunk_size": "0"}, "at least 1 byte"),
        ({"parallelism": True}, "parallelism must be an integer from 1 to 1024"),
        ({"parallelism": 5000}, "parallelism must be an integer from 1 to 1024"),
        ({"max_delete": -2}, "max_delete must be a non-negative integer"),
        ({"copy_method": "bogus"}, "copy_method must be one of"),
        ({"filters": [("+", "a", "b")]}, "filters must be a list of"),
        ({"filters": "+a"}, "filters must be a list of"),
        ({"include": None}, "include must be a pattern or a list"),
        ({"include": [""]}, "include must be a pattern or a list"),
        ({"scheduler": "a b"}, "scheduler must be a name"),
        ({"control_queue": ""}, "control_queue must be a non-empty string"),
        ({"source_cluster": "", "destination_cluster": "B"}, "source_cluster must be a non-empty string"),
        ({"direction": "A_TO_B_TO_C"}, "direction must name two clusters"),
        ({"direction": "A.x_TO_B"}, "is not a cluster name"),
        ({"bwlimit": -1}, "bwlimit: not a rate"),
        ({"bwlimit": "fast"}, "bwlimit: not a rate"),
        ({"bwlimit": True}, "bwlimit: not a rate"),
    ],
)
def test_make_params_checks_each_option_by_its_kind(options: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        make_params("/a", "/b", **options)


def test_a_single_pattern_is_one_rule_not_its_characters() -> None:
    params = make_params("/a", "/b", include="*.c", exclude="tmp")
    assert params.filters == (("+", "*.c"), ("-", "tmp"))


def test_workers_yml_defaults_fill_what_the_caller_did_not_give() -> None:
    defaults = DefaultsConfig(parallelism=7, chunk_size=1 << 20)
    assert (
        make_params("/a", "/b", defaults=defaults).parallelism,
        make_params("/a", "/b", defaults=defaults).chunk_size,
    ) == (7, 1 << 20)
    assert make_params("/a", "/b", defaults=defaults, parallelism=2).parallelism == 2


def test_a_malformed_option_on_the_command_line_is_a_usage_error(tmp_path: object) -> None:
    result = CliRunner().invoke(cli, ["sync", "/nonexistent-src", "/tmp/nonexistent-dst", "--direction", "FOO"])
    assert result.exit_code == 2, result.output
    assert "direction must look like A_TO_B" in result.output


@pytest.mark.parametrize(
    ("given", "per_second"),
    [("100", 100 * 1024), (100, 100 * 1024), ("50M", 50 << 20), ("1.5G", 3 << 29), ("10MB", 10**7), ("0", 0)],
)
def test_bwlimit_is_read_as_rsync_reads_it(given: object, per_second: int) -> None:
    assert make_params("/a", "/b", bwlimit=given).bwlimit == per_second
    if isinstance(given, str):
        ctx = cli.make_context("dms-submit", ["sync", "/a", "/b", "--bwlimit", given])
        sub = cli.get_command(ctx, "sync")
        assert sub is not None
        parsed = sub.make_context("sync", ["/a", "/b", "--bwlimit", given])
        assert parsed.params["bwlimit"] == given


def test_a_malformed_bwlimit_on_the_command_line_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["sync", "/nonexistent-src", "/tmp/nonexistent-dst", "--bwlimit", "-5"])
    assert result.exit_code == 2 and "not a rate" in result.output, result.output


def test_a_files_from_list_is_read_as_rsync_reads_it_and_kept_out_of_the_params_json() -> None:
    params = make_params("/a", "/b", files_from=["/x//y/", "./z", "../w", "  ", "z"])
    assert params.files_from == ("w", "x/y/", "z") and params.files_listed == 3
    assert "files_from" not in params.to_json()  # every task reads the params: the list has a key of its own
    back = SyncParams.from_json(params.to_json())
    assert back == params and back.files_listed == 3 and back.files_from == ()
    assert make_params("/a", "/b", files_from=["."]).files_from == ("",)  # the source alone
    assert make_params("/a", "/b", files_from=[""]).files_from == ("",)  # a list of blanks: not the whole tree
    assert make_params("/a", "/b", files_from=[]).files_listed == 0  # no list
    with pytest.raises(ValueError, match="files_from must be a list of paths"):
        make_params("/a", "/b", files_from="x")
    with pytest.raises(ValueError, match="NUL"):
        make_params("/a", "/b", files_from=["a\0b"])


def test_a_files_from_list_narrows_the_rules() -> None:
    rules = RuleSet([("-", "*.tmp")], ["a/b/c.txt", "d/", "x/y.tmp", ""])
    assert not rules.excluded("a", True) and not rules.excluded("a/b", True)  # on the way
    assert rules.excluded("a", False)  # a file where the way needs a directory
    assert not rules.excluded("a/b/c.txt", False) and rules.excluded("a/b/other", False)
    assert not rules.excluded("d", True) and not rules.excluded("d/in", False) and not rules.excluded("d/sub", True)
    assert rules.excluded("d/sub/deep", False)  # DIR/ lists its immediate contents only
    assert rules.excluded("x/y.tmp", False)  # listed, and excluded by a rule
    assert rules.excluded("e", False) and bool(RuleSet([], [""]))
    assert not RuleSet([], ["/"]).excluded("top", False)  # "./" in the file: the source's own contents
