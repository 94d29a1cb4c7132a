"""Which run of a node's worker this process belongs to: its incarnation.

Why: a worker killed and restarted within its heartbeat TTL (systemd's Restart=always)
beats again before anybody sees it silent, so "the node is alive" says nothing about the
units its previous run had reserved. Those wait for the broker's visibility timeout (2 h)
unless something can tell the two runs apart. An incarnation names one run of the main
worker process: node, boot id, pid and the process's start time in clock ticks since
boot (a pid alone is reused; with the boot id and start time it is not). The heartbeat
announces it; a transfer claims its unit under it (plus its pool process's pid); the
janitor compares the two (decision 0025).

The main process computes it once, before the pool forks, and hands it to the pool in
DMS_INCARNATION; a process outside a node worker has none ("").
"""

from __future__ import annotations

import os
import time

__all__ = ["ENV", "begin", "claim_of_this_process", "current", "node_of", "started_at"]

ENV = "DMS_INCARNATION"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()[:8]
    except OSError:
        return "noboot"


def _start_ticks(pid: int) -> str:
    """Field 22 of /proc/PID/stat: when the process started, in ticks since boot."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        return stat.rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return "0"


def begin(node: str) -> str:
    """Name this run of `node`'s main worker process and export it to the pool it forks.
    The wall-clock start time is carried too, so a consumer can tell which of the broker's
    unacknowledged messages were fetched before this run began (dms.worker.broker_recovery)."""
    pid = os.getpid()
    incarnation = f"{node}:{_boot_id()}:{pid}:{_start_ticks(pid)}@{time.time():.3f}"
    os.environ[ENV] = incarnation
    return incarnation


def current() -> str:
    """This process's incarnation ("" outside a node worker)."""
    return os.environ.get(ENV, "")


def node_of(incarnation: str) -> str:
    return incarnation.partition(":")[0]


def started_at(incarnation: str) -> float:
    """When the incarnation's main process began (wall clock; 0 if unknown)."""
    try:
        return float(incarnation.rpartition("@")[2])
    except ValueError:
        return 0.0


def claim_of_this_process() -> str:
    """What a running unit is claimed under: the incarnation and this pool process's pid
    ("" outside a node worker: nothing claims, nothing is watched)."""
    inc = current()
    return f"{inc}/{os.getpid()}" if inc else ""
