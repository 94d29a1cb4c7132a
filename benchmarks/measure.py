"""One measured run of one tool: cold cache, wall time, CPU seconds on both sides, checked.

The time that counts runs from the command's start until its data is on disk: the
command, then `sync`. cp, rsync and the others return while their writes still sit in
the page cache; DMS flushes (syncfs) before it publishes. `wall` (until the command
returned) is recorded too.

Client CPU is the rusage of the command and everything it waited for (cp, rsync's
local receiver, dms-submit and an embedded worker). Server CPU is what the tool's
long-running processes (a daemon and its reaped children, DMS workers and their pool
and receiver processes, redis-server) used during the run, read from /proc.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.common import drop_caches
from benchmarks.datasets import Dataset, verify
from benchmarks.peers import Tool

__all__ = ["measure", "peak_rss_mib", "tree_cpu_seconds"]

_TICK = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                todo.extend(int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split())
        except OSError:
            continue
    return out


def tree_cpu_seconds(pids: list[int]) -> float:
    """utime + stime (+ reaped children's) of these processes and their descendants."""
    total = 0
    for root in pids:
        for p in _tree(root):
            try:
                fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / _TICK


def peak_rss_mib(pids: list[int]) -> dict[str, float]:
    """VmHWM (peak resident set) of every process in these trees: 'pid name' -> MiB."""
    out = {}
    for root in pids:
        for p in _tree(root):
            try:
                status = Path(f"/proc/{p}/status").read_text().splitlines()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status if ":" in line)
            if "VmHWM" in fields:
                out[f"{p} {fields['Name'].strip()}"] = int(fields["VmHWM"].split()[0]) / 1024
    return out


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def measure(
    tool: Tool, ds: Dataset, src: Path, argv: list[str], *, fresh: bool = True, settle: float = 0.0
) -> dict[str, Any]:
    """Run `argv` once from a cold page cache; `fresh` removes the destination first.

    `settle` seconds pass between that removal and the run. On an ext4 without a journal the
    inode allocator passes over inodes freed in the last 60 s (`recently_deleted` in
    fs/ext4/ialloc.c), checking each one on every create, so a tree created right after
    another was removed pays for the removal (docs/performance.md, the S sections of "What limits each case")."""
    dst = tool.dst_base / ds.name
    if fresh:
        shutil.rmtree(dst, ignore_errors=True)
        if settle > 0:
            time.sleep(settle)
        if tool.name == "cp -a":
            dst.mkdir(parents=True)
    drop_caches()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")}
    env.update(tool.env)
    server_before = tree_cpu_seconds(tool.server_pids())
    client_before = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=str(tool.dst_base))
    wall = time.perf_counter() - start
    if not tool.memory_only:
        os.sync()  # the data is on disk, as DMS's own finalize guarantees (docs/performance.md, "Method")
    synced = time.perf_counter() - start
    result: dict[str, Any] = {
        "wall": wall,
        "synced": synced,
        "client_cpu": _children_cpu() - client_before,
        "server_cpu": tree_cpu_seconds(tool.server_pids()) - server_before,
    }
    if proc.returncode != 0:
        raise RuntimeError(f"{tool.name} exited {proc.returncode}: {proc.stderr[-2000:] or proc.stdout[-2000:]}")
    if tool.parse is not None:
        parsed = tool.parse(proc.stdout)
        result["seconds"] = parsed["seconds"]  # iperf3: the receiver's own measure of the transfer
        result["bytes"] = parsed["bytes"]
    else:
        result["seconds"] = synced
    if not tool.memory_only and not tool.reference:
        verify(ds, src, dst)
    return result
