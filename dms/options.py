"""The options of a sync request, in one table: names, defaults, meaning, command-line spelling.

Why one table: `dms-submit sync` builds its click options from it, `make_params` (and
so dms.sync(), dms.sync_signature() and the dms.sync task) accepts exactly its names,
checks each value by its kind and bounds, and fills in its defaults, and SyncParams takes
its field defaults from it. An option added here appears in all of them at once; one that
is missing from one of them cannot be. Not options of a request, so not here: the paths,
the request id (`--id`, `request_id=`) and how a caller waits (`--wait`, `--json`, `timeout`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from dms import defaults as default

__all__ = ["OPTIONS", "Option", "default_of", "unknown_options"]

#: flag: a boolean; int: an integer in [low, high]; count: an integer >= 0, or -1 for no
#: limit; size: bytes or "64MiB"; text: a string (with `name`, a cluster or policy name);
#: choice: one of `choices`; patterns: rsync rules, repeatable (a single string is one
#: rule); rules: ordered ("+"|"-", pattern) pairs (Python only); rate: bytes per second, read
#: as rsync's --bwlimit (a bare number is KiB/s; 0 is no limit); paths: relative paths
#: inside the source, as a --files-from list (Python; the CLI reads --files-from FILE).
Kind = Literal["flag", "int", "count", "size", "text", "choice", "patterns", "rules", "rate", "paths"]


@dataclass(frozen=True)
class Option:
    """One request option. `cli` is its long flag ("" when only Python callers set it);
    a `negate` flag turns the option off (--no-xattrs sets xattrs False)."""

    name: str
    help: str
    kind: Kind = "flag"
    default: Any = False
    cli: str = ""
    short: str = ""
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    negate: bool = False
    low: int = 1
    high: int = 1 << 62
    #: a text option that names a cluster or a policy (letters, digits, "_", "-")
    name_like: bool = False


OPTIONS: tuple[Option, ...] = (
    Option("parallelism", "Transfer tasks in flight at once.", "int", default.PARALLELISM,
           "--parallelism", "-p", high=1024),
    Option("chunk_size", "Largest piece of one file per task, e.g. 64MiB (default).", "size", default.CHUNK_SIZE,
           "--chunk-size"),
    Option("copy_method", "How bytes move on one node; copy_file_range falls back to readwrite where the kernel "
           "refuses (docs/decisions/0003-copy-method.md).", "choice", default.COPY_METHOD, "--copy-method",
           choices=("readwrite", "copy_file_range")),
    Option("ignore_times", "Copy every file, even those whose size, mtime and mode match.", cli="--ignore-times",
           short="-I"),
    Option("source_cluster", "Cluster that holds SOURCE (with --to).", "text", None, "--from", metavar="CLUSTER",
           name_like=True),
    Option("destination_cluster", "Cluster that receives DESTINATION.", "text", None, "--to", metavar="CLUSTER",
           name_like=True),
    Option("direction", "Same as --from A --to B (the reference design's spelling).", "text", None, "--direction",
           metavar="A_TO_B"),
    Option("scheduler", "Scheduler policy (default: workers.yml defaults.scheduler).", "text", None, "--scheduler",
           metavar="POLICY", name_like=True),
    Option("checksum", "Skip files by content (XXH3 of both copies), not size+mtime.", cli="--checksum", short="-c"),
    Option("delete", "Delete destination entries that are not in the source (each is logged).", cli="--delete"),
    Option("max_delete", "With --delete: delete at most N entries.", "count", -1, "--max-delete", metavar="N"),
    Option("bwlimit", "Limit the request's transfers to RATE per second in all, shared among its lanes: a bare "
           "number is KiB/s as in rsync, or 50M, 1.5G; 0: no limit.", "rate", 0, "--bwlimit", metavar="RATE"),
    Option("dry_run", "Show what would be copied, updated and deleted; change nothing.", cli="--dry-run", short="-n"),
    Option("itemize", "List every change in rsync's itemized form (%i) at the end of --wait.",
           cli="--itemize-changes", short="-i"),
    Option("include", "Include what matches (rsync rules; repeatable).", "patterns", (), "--include",
           metavar="PATTERN"),
    Option("exclude", "Exclude what matches (rsync rules; repeatable).", "patterns", (), "--exclude",
           metavar="PATTERN"),
    Option("filters", "Ordered rules as ('+' or '-', pattern) pairs, before include and exclude.", "rules", ()),
    Option("files_from", "Only these paths, relative to SOURCE (rsync --files-from): the directories on the way "
           "are made; a listed directory is not descended into.", "paths", ()),
    Option("specials", "Recreate fifos, sockets and (as root) devices (rsync -D).", cli="--specials", short="-D"),
    Option("xattrs", "Do not copy extended attributes (and ACLs).", default=True, cli="--no-xattrs", negate=True),
    Option("fsync", "Do not flush data to disk before publishing (faster, less safe).", default=True,
           cli="--no-fsync", negate=True),
    Option("control_queue", "Queue of plan, walk and finalize of a single-node request.", "text",
           default.CONTROL_QUEUE),
    Option("data_queue", "Queue of the transfer units of a single-node request.", "text", default.DATA_QUEUE),
)  # fmt: skip

_BY_NAME = {o.name: o for o in OPTIONS}


def default_of(name: str) -> Any:
    """The default of option `name` (a KeyError for a name not in the table)."""
    return _BY_NAME[name].default


def unknown_options(options: Mapping[str, Any]) -> list[str]:
    """The names in `options` that are no request option, sorted."""
    return sorted(set(options) - set(_BY_NAME))
