"""Scheduler policies: which (source NIC -> destination NIC) path carries each transfer unit.

A policy is a plugin: subclass SchedulerPolicy, give it a `name`, and register
the class under the entry-point group `dms.scheduler_policies`. It is chosen
by name in workers.yml (`defaults.scheduler`) or per request (`--scheduler`).
docs/api.md ("Writing a scheduler policy") has a worked example.

DMS hands a policy only paths that can work: NICs of nodes whose heartbeat is
current (and, for destinations, whose receiver runs), paired only within the
same `network` label when both sides have one (multi-rail sites). The policy
only picks; DMS records the choice and accounts its bytes as in flight on both
NICs until the unit is done, which is what `load` reports.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import ClassVar

from dms.errors import ConfigError
from dms.route.nics import same_rail
from dms.state.nodes import NicEndpoint

__all__ = [
    "ENTRY_POINT_GROUP",
    "LeastLoaded",
    "Path",
    "RoundRobin",
    "SchedulerPolicy",
    "UnitToRoute",
    "available_policies",
    "candidate_paths",
    "get_policy",
]

ENTRY_POINT_GROUP = "dms.scheduler_policies"

#: A (source NIC, destination NIC) pair.
Path = tuple[NicEndpoint, NicEndpoint]


@dataclass(frozen=True)
class UnitToRoute:
    request_id: str
    index: int  # the unit's position in the request (0, 1, 2, ...)
    nbytes: int


class SchedulerPolicy(abc.ABC):
    """Decides the path of one unit. Called in whichever DMS process dispatches the
    unit, so it must be cheap and keep no state that other processes need: use
    the unit index or the `load` mapping ("<node>/<iface>" -> bytes in flight)."""

    name: ClassVar[str] = ""

    @abc.abstractmethod
    def choose(self, unit: UnitToRoute, paths: Sequence[Path], load: Mapping[str, int]) -> Path:
        """Return one element of `paths` (never empty)."""


class RoundRobin(SchedulerPolicy):
    """Unit i leaves through source NIC i mod S and lands on destination NIC i mod D
    (among those reachable from that source): an even spread by count."""

    name = "round_robin"

    def choose(self, unit: UnitToRoute, paths: Sequence[Path], load: Mapping[str, int]) -> Path:
        sources = sorted({p[0] for p in paths}, key=lambda e: e.key)
        src = sources[unit.index % len(sources)]
        dests = sorted((p[1] for p in paths if p[0] == src), key=lambda e: e.key)
        return src, dests[unit.index % len(dests)]


class LeastLoaded(SchedulerPolicy):
    """The source NIC with the fewest bytes in flight, then the least loaded
    destination NIC reachable from it; ties rotate with the unit index so equal
    NICs share work evenly. Adapts to slow links and to units of uneven size."""

    name = "least_loaded"

    def choose(self, unit: UnitToRoute, paths: Sequence[Path], load: Mapping[str, int]) -> Path:
        sources = sorted({p[0] for p in paths}, key=lambda e: e.key)
        src = _least(sources, load, unit.index)
        dests = sorted((p[1] for p in paths if p[0] == src), key=lambda e: e.key)
        return src, _least(dests, load, unit.index)


def _least(endpoints: Sequence[NicEndpoint], load: Mapping[str, int], turn: int) -> NicEndpoint:
    n = len(endpoints)
    return min(enumerate(endpoints), key=lambda ie: (load.get(ie[1].key, 0), (ie[0] - turn) % n))[1]


def candidate_paths(sources: Sequence[NicEndpoint], destinations: Sequence[NicEndpoint]) -> list[Path]:
    """Every source x destination pair that can carry bytes (same rail label, or unlabelled)."""
    return [(s, d) for s in sources for d in destinations if same_rail(s.network, d.network)]


_BUILTIN: dict[str, type[SchedulerPolicy]] = {RoundRobin.name: RoundRobin, LeastLoaded.name: LeastLoaded}


def available_policies() -> dict[str, type[SchedulerPolicy]]:
    """Built-in policies plus every class registered under the entry-point group."""
    found = dict(_BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in found:
            found[ep.name] = ep.load()
    return found


@cache
def get_policy(name: str) -> SchedulerPolicy:
    policies = available_policies()
    try:
        cls = policies[name]
    except KeyError:
        raise ConfigError(
            f"unknown scheduler policy {name!r}; available: {', '.join(sorted(policies))} "
            f"(third-party policies register under the entry-point group {ENTRY_POINT_GROUP!r})"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, SchedulerPolicy)):
        raise ConfigError(f"scheduler policy {name!r} ({cls!r}) is not a SchedulerPolicy subclass")
    return cls()
