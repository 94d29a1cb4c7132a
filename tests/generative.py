"""Bookkeeping of the generative tests: how many examples each ran and how long it took.

Printed at the end of the pytest run (tests/conftest.py, pytest_terminal_summary), so a CI
log says how much the machine tried, not only that it passed. The profile (bounded in CI,
`long` for as long as asked) is chosen with DMS_GENERATIVE_PROFILE=ci|long, and
DMS_GENERATIVE_EXAMPLES overrides the number of examples of every generative test.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings

__all__ = ["REPORT", "Tally", "examples", "profile", "tally"]

PROFILE = os.environ.get("DMS_GENERATIVE_PROFILE", "ci")


@dataclass
class Tally:
    examples: int = 0
    steps: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


REPORT: dict[str, Tally] = {}


def examples(ci: int, long: int) -> int:
    """Examples for one test under the active profile."""
    override = os.environ.get("DMS_GENERATIVE_EXAMPLES")
    if override:
        return int(override)
    return long if PROFILE == "long" else ci


def profile(ci: int, long: int, **extra: object) -> settings:
    """Hypothesis settings of a generative test: no deadline (real services are slow on a
    noisy 2-core machine), derandomized in CI (a red CI is reproducible from its log; the
    `long` profile explores new seeds each run)."""
    return settings(
        max_examples=examples(ci, long),
        deadline=None,
        derandomize=PROFILE != "long",
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
        print_blob=True,
        **extra,  # type: ignore[arg-type]
    )


@contextmanager
def tally(name: str) -> Iterator[Tally]:
    """Count one example of test `name` and add its time."""
    t = REPORT.setdefault(name, Tally())
    start = time.monotonic()
    try:
        yield t
    finally:
        t.examples += 1
        t.seconds += time.monotonic() - start
