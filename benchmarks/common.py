"""What every benchmark here shares: cache hygiene and the median/ratio report."""

from __future__ import annotations

import os
import statistics
import subprocess
from pathlib import Path

__all__ = ["drop_caches", "report"]


def drop_caches() -> None:
    """`sync`, then drop the page cache (when root), so every run starts cold."""
    subprocess.run(["sync"], check=True)
    if os.geteuid() == 0:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


def report(times: dict[str, list[float]], total_mib: float, reference: str) -> None:
    """Median (min-max), MiB/s and speed relative to `reference`, one line per tool."""
    ref = statistics.median(times[reference])
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:18s} {med:6.2f} s ({min(values):.2f}-{max(values):.2f})  {total_mib / med:7.0f} MiB/s  "
              f"{ref / med:5.2f} x {reference}")  # fmt: skip
