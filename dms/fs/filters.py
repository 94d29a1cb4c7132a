"""--include / --exclude rules with rsync's semantics (the common subset).

Rules are tried in the order given; the first whose pattern matches decides
(include or exclude); a path no rule matches is included. Patterns:

- `*` matches anything but `/`; `?` one character but `/`; `[...]` a class;
  `**` anything, `/` included; `dir/***` matches `dir` and everything below it.
- A trailing `/` matches directories only (`--exclude 'cache/'`).
- A leading `/` anchors the pattern at the root of the transfer (`/build`
  is only the top-level build); otherwise a pattern with no other `/` is
  matched against the name alone (`*.o` anywhere), and a pattern with a `/`
  against the end of the path at a directory boundary (`src/*.c` matches
  `src/a.c` and `lib/src/a.c`).
- An excluded directory is not descended into, so nothing inside it can be
  included again (as in rsync: include the parents too, `--include '*/'`).
- With --delete, destination entries a rule excludes are not deleted
  (rsync's default; there is no --delete-excluded yet).

A --files-from list (`listed`) narrows all this down, as rsync's does without -r: only
the paths listed, and the directories on the way to them, are in the transfer. A listed
directory is made, not descended into; listed as "dir/", its immediate contents are in too.
The rules still judge the listed paths; the directories on the way are in whatever the
rules say (rsync's implied directories).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

__all__ = ["Rule", "RuleSet", "listed_path"]


@dataclass(frozen=True)
class Rule:
    include: bool
    pattern: str

    @cached_property
    def dir_only(self) -> bool:
        return self.pattern.endswith("/") and self.pattern != "/"

    @cached_property
    def regex(self) -> re.Pattern[str]:
        pat = self.pattern.rstrip("/") if self.dir_only else self.pattern
        anchored = pat.startswith("/")
        pat = pat.lstrip("/")
        body = _translate(pat)
        if anchored:
            return re.compile(f"^{body}$", re.S)
        # unanchored: the name alone (no '/' in the pattern), or a tail of the path at a '/'
        return re.compile(f"(?:^|.*/){body}$", re.S)

    def matches(self, relpath: str, is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        return self.regex.match(relpath) is not None


def _translate(pat: str) -> str:
    out = []
    i = 0
    while i < len(pat):
        if pat.startswith("/***", i) and i + 4 == len(pat):
            out.append("(?:/.*)?")
            i += 4
        elif pat.startswith("***", i):
            out.append(".*")
            i += 3
        elif pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif pat[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pat[i] == "?":
            out.append("[^/]")
            i += 1
        elif pat[i] == "[":
            end = pat.find("]", i + 2 if pat.startswith("[!", i) or pat.startswith("[]", i) else i + 1)
            if end < 0:
                out.append(re.escape(pat[i]))
                i += 1
            else:
                cls = pat[i + 1 : end]
                if cls.startswith("!"):
                    cls = "^" + cls[1:]
                out.append(f"[{cls.replace(chr(92), chr(92) * 2)}]")
                i = end + 1
        else:
            out.append(re.escape(pat[i]))
            i += 1
    return "".join(out)


class RuleSet:
    def __init__(self, rules: Sequence[tuple[str, str]] = (), listed: Iterable[str] = ()) -> None:
        """rules: ("+", pattern) for --include, ("-", pattern) for --exclude, in order;
        listed: the relative paths of a --files-from list (normalized: dms.fs.filters.listed_path)."""
        self.rules = []
        for kind, pattern in rules:
            if kind not in ("+", "-") or not pattern:
                raise ValueError(f"a filter rule is ('+' or '-', pattern), got {(kind, pattern)!r}")
            self.rules.append(Rule(kind == "+", pattern))
        entries = list(listed)
        self.listed = frozenset(e.rstrip("/") for e in entries if e.rstrip("/"))
        #: directories listed with a trailing "/": their immediate contents are listed too
        self.contents = frozenset(e.rstrip("/") for e in entries if e.endswith("/"))
        self.narrowed = bool(entries)
        self.on_the_way = frozenset(step.rpartition("/")[0] for path in self.listed for step in _parents(path))

    def __bool__(self) -> bool:
        return bool(self.rules) or self.narrowed

    def excluded(self, relpath: str, is_dir: bool) -> bool:
        if self.narrowed and relpath not in self.listed and relpath.rpartition("/")[0] not in self.contents:
            return relpath not in self.on_the_way or not is_dir
        for rule in self.rules:
            if rule.matches(relpath, is_dir):
                return not rule.include
        return False


def _parents(relpath: str) -> Iterator[str]:
    """`relpath` and each of its parents but the root, as paths whose parent rpartition gives:
    "a/b/c" -> "a/b/c", "a/b" (their parents "a/b" and "a" are the directories on the way)."""
    while "/" in relpath:
        yield relpath
        relpath = relpath.rpartition("/")[0]


def listed_path(line: str) -> str:
    """A --files-from entry as rsync reads one, relative to the source: a leading "/" and "."
    components dropped, ".." resolved away (never above the source: "../foo" is "foo"). A
    trailing "/" is kept: it also lists the directory's immediate contents. "" is the source
    itself ("." or ".."): only the directory, as rsync makes it."""
    if "\0" in line:
        raise ValueError(f"a --files-from entry holds a NUL: {line!r}")
    parts: list[str] = []
    for part in line.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    path = "/".join(parts)
    if line.endswith("/"):
        return path + "/"  # "/" alone: the source's immediate contents
    return path
