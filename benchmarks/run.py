"""DMS beside its peers on the same generated data, in one run: one command.

    python -m benchmarks.run            # L, M, S at full size, 3 runs each (12-20 minutes here)
    python -m benchmarks.run --quick    # the same at scale 0.05: a few minutes
    python -m benchmarks.run --datasets S --repeat 5 --out /tmp/bench
    python -m benchmarks.run --datasets S --settle 65   # start past ext4's recently-deleted window

What runs (docs/performance.md has the latest table and how to read it):
- locally, on L, M and S: cp -a, rsync -a, rclone copy (--transfers 8 --multi-thread-streams 4),
  fpsync -n 4, DMS as a service (redis-server and a worker started once, beforehand) and DMS
  embedded (the one-command mode: its own redis-server and worker per sync);
- over TCP on loopback, on L: iperf3 -P 4 (memory to memory: the link limit), an rsync daemon,
  globus-url-copy -p 4 against a local globus-gridftp-server, and DMS between two one-node
  clusters (a1 on 127.0.0.1 pushing to b1's receiver on 127.0.0.2);
- the same TCP tools across a veth pair: hosts a1 and b1 in their own network namespaces
  joined by a bridge (tests/netns.py), servers in b1's namespace, clients in a1's;
- the no-change re-sync of S by the tools that sync (each into the destination it just made).

Hygiene: before every run the destination is removed, `sync` runs and the page cache is
dropped (root); tools alternate within each repetition; medians with min-max; every
destination is checked (file count, bytes, sampled content) before its time counts.
Writes results.json, results.md and chart.png into --out (default benchmarks/results/<time>).
Missing Debian packages are installed (root); a tool that cannot run is skipped with a note.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.datasets import Dataset, datasets, generate  # noqa: E402
from benchmarks.measure import measure, peak_rss_mib  # noqa: E402
from benchmarks.peers import Bench, Tool, ensure_packages  # noqa: E402
from benchmarks.report import machine, summarize, targets, write_outputs  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="scale 0.05 (L 4 x 51 MiB, M 100 x 1 MiB, S 2,500 x 4 KiB)")
    ap.add_argument("--scale", type=float, default=None, help="dataset scale (1.0 = full size)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool (at least 3 for a result that counts)")
    ap.add_argument("--datasets", default="L,M,S", help="comma-separated subset of L,M,S")
    ap.add_argument("--tools", default="", help="only tools whose name contains one of these (comma-separated)")
    ap.add_argument("--no-tcp", action="store_true", help="skip the TCP groups (loopback and veth)")
    ap.add_argument("--no-veth", action="store_true", help="skip the veth group (needs root: network namespaces)")
    ap.add_argument("--settle", type=float, default=0.0,
                    help="seconds to wait after removing a destination, before the run (65: past ext4's "
                         "60 s recently-deleted window; see docs/performance.md)")  # fmt: skip
    ap.add_argument("--work", type=Path, default=Path("/var/tmp/dms-bench"), help="data and destinations")
    ap.add_argument(
        "--keep",
        action="store_true",
        help="keep the destinations and server scratch under --work after the run (removed by default)",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    scale = args.scale if args.scale is not None else (0.05 if args.quick else 1.0)
    out = args.out or ROOT / "benchmarks" / "results" / time.strftime("%Y%m%d-%H%M%S")
    chosen = {k: v for k, v in datasets(scale).items() if k in args.datasets.split(",")}
    args.work.mkdir(parents=True, exist_ok=True)

    bench = Bench(args.work, keep=args.keep)
    usable = ensure_packages(["rsync", "rclone", "fpsync", "globus-url-copy", "globus-gridftp-server", "iperf3"],
                             bench.notes)  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    try:
        bench.add_local(usable)
        if "L" in chosen and not args.no_tcp:
            bench.add_tcp(usable)
        wanted = [t for t in bench.tools if not args.tools or any(w in t.name for w in args.tools.split(","))]
        for name, ds in chosen.items():
            t = time.perf_counter()
            src = generate(ds, args.work / "data")
            print(f"dataset {name}: {ds.describe()} ({time.perf_counter() - t:.0f} s to make or check)", flush=True)
            groups = [("local", src, [x for x in wanted if x.group == "local"])]
            if name == "L" and not args.no_tcp:
                groups.append(("tcp", src, [x for x in wanted if x.group == "tcp"]))
                if not args.no_veth:
                    try:
                        linked = bench.add_veth(usable, src)
                    except Exception as exc:  # no namespaces here (not root, no iproute2)
                        bench.notes.append(f"veth group skipped: {exc}")
                    else:
                        veth = [x for x in bench.tools if x.group == "veth"]
                        groups.append(("veth", linked, [x for x in veth if not args.tools or any(
                            w in x.name for w in args.tools.split(","))]))  # fmt: skip
            if name == "L" and (not args.tools or "floor" in args.tools):
                groups = [(g, where, [*tools, bench.disk_floor(g)]) for g, where, tools in groups]
            for group, where, tools in groups:
                if tools:
                    _run_group(results, bench, ds, where, f"{name} {group}", tools, args.repeat, args.settle)
        rss = peak_rss_mib(bench.dms_pids() + getattr(bench, "dms_tcp_pids", list)()
                           + getattr(bench, "dms_veth_pids", list)())  # fmt: skip
    finally:
        bench.close()
    doc = {
        "machine": machine(),
        "scale": scale,
        "repeat": args.repeat,
        "settle": args.settle,
        "datasets": {k: {"files": v.files, "size": v.size, "describe": v.describe()} for k, v in chosen.items()},
        "results": results,
        "rss_mib": rss,
        "notes": bench.notes,
    }
    doc["targets"] = targets(results, {k: v for k, v in rss.items()})
    for path in write_outputs(doc, out):
        print(f"wrote {path}")
    print((out / "results.md").read_text())
    return 0


def _run_group(results: dict[str, dict[str, Any]], bench: Bench, ds: Dataset, src: Path, case: str,
               tools: list[Tool], repeat: int, settle: float = 0.0) -> None:  # fmt: skip
    runs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in tools}
    resyncs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in tools if t.resync and ds.name == "S"}
    for rep in range(repeat):
        for tool in tools:
            if tool.memory_only:
                argv = [*bench.veth_iperf3, str(ds.total_bytes)] if tool.group == "veth" else \
                    bench.iperf3_argv(ds.total_bytes)  # fmt: skip
            else:
                argv = tool.argv(src, tool.dst_base / ds.name)
            try:
                r = measure(tool, ds, src, argv, settle=settle)
            except Exception as exc:
                bench.notes.append(f"{case}: {tool.name} run {rep + 1} failed: {exc}")
                print(f"  {tool.name}: FAILED {exc}", flush=True)
                continue
            runs[tool.name].append(r)
            print(f"  {case} {tool.name} run {rep + 1}: {r['seconds']:.2f} s", flush=True)
            if tool.name in resyncs:
                again = measure(tool, ds, src, argv, fresh=False)
                resyncs[tool.name].append(again)
                print(f"  S re-sync {tool.name} run {rep + 1}: {again['seconds']:.2f} s", flush=True)
    results[case] = {n: summarize(r, ds.total_bytes, ds.files) for n, r in runs.items() if r}
    if resyncs:
        results["S re-sync"] = {n: summarize(r, ds.total_bytes, ds.files) for n, r in resyncs.items() if r}


if __name__ == "__main__":
    sys.exit(main())
