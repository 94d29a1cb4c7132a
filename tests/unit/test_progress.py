"""What the progress display says before the plan knows its totals: no full bar while
PENDING, no "24 MiB / 0 B" while the walk goes on and transfers already move bytes."""

from __future__ import annotations

import io
from typing import Any

from dms.cli.display import ProgressDisplay
from dms.cli.progress import ProgressTracker

MIB = 1024 * 1024


def _info(state: str, planned: bool, done: int = 0, total: int = 0, **more: Any) -> dict[str, Any]:
    return {"state": state, "planned": planned, "bytes_done": done, "bytes_total": total, "files_done": 0,
            "files_failed": 0, "files_total": 0, "tasks_done": 0, "tasks_total": 0, **more}  # fmt: skip


def test_no_fraction_and_no_eta_before_the_totals_are_known() -> None:
    tracker = ProgressTracker()
    pending = tracker.update(_info("PENDING", False), now=0.0)
    assert pending.fraction is None and pending.eta is None
    walking = tracker.update(_info("PLANNING", False, done=24 * MIB, bytes_inflight=MIB), now=1.0)
    assert walking.fraction is None and walking.eta is None and walking.bytes_done == 25 * MIB
    planned = tracker.update(_info("TRANSFERRING", True, done=30 * MIB, total=60 * MIB), now=2.0)
    assert planned.fraction == 0.5 and planned.eta is not None
    empty = ProgressTracker().update(_info("SUCCEEDED", True), now=0.0)
    assert empty.fraction == 1.0 and empty.as_dict()["fraction"] == 1.0


def test_the_displays_say_the_total_is_not_known_yet() -> None:
    out = io.StringIO()
    ProgressDisplay("r1", out, "tty")(_info("PLANNING", False, done=24 * MIB))
    text = out.getvalue()
    assert "total not known yet" in text and "100.0%" not in text and "/ 0 B" not in text, text
    out = io.StringIO()
    ProgressDisplay("r1", out, "tty")(_info("PENDING", False))
    assert "100.0%" not in out.getvalue(), out.getvalue()
    out = io.StringIO()
    ProgressDisplay("r1", out, "plain")(_info("PLANNING", False, done=24 * MIB))
    assert f"bytes={24 * MIB}/? " in out.getvalue(), out.getvalue()
    out = io.StringIO()
    ProgressDisplay("r1", out, "json")(_info("PLANNING", False, done=5))
    assert '"fraction": null' in out.getvalue(), out.getvalue()
