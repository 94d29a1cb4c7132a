"""DMS across the multi-host namespace topology, beside iperf3 over the same links, in one run.

    python benchmarks/multihost.py [--size-mib 2048] [--files 4] [--runs 3] [--dir /var/tmp/dms-bench-mh]

Needs root (network namespaces). Builds the topology of tests/netns.py: cluster A = a1, a2, cluster
B = b1, each node with two data NICs (d0, d1) on one data subnet and a control NIC; Redis on the
control network. DMS syncs a tree of `--files` large files (`--size-mib` MiB in all) from A to B with
every worker at concurrency 2, so 4 sender processes hold one TCP stream each, spread by the scheduler
over the 4 source NICs and 2 destination NICs. iperf3 then runs the same 4 streams over the same
NIC pairs (a1/d0->b1/d0, a1/d1->b1/d1, a2/d0->b1/d0, a2/d1->b1/d1), memory to memory, for about as
long as DMS took. Before every DMS run the destination is removed, `sync` runs and the page cache
is dropped. Prints medians (min-max) and DMS's throughput as a fraction of iperf3's.

Two DMS figures: end to end (submit to SUCCEEDED: plan, transfer, verify, fsync, publish) and the
transfer phase alone (first unit started to last unit done, from the request's event log).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1 << 20
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import drop_caches  # noqa: E402
from tests.clusters import multihost_deployment  # noqa: E402
from tests.netns import netns_unavailable  # noqa: E402
from tests.trees import write_unique  # noqa: E402

PAIRS = [("a1", 0, 0), ("a1", 1, 1), ("a2", 0, 0), ("a2", 1, 1)]  # (source node, source NIC, b1 NIC)


def ensure_iperf3() -> str:
    found = shutil.which("iperf3")
    if found:
        return found
    print("installing iperf3 (Debian package) ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "iperf3"], env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return shutil.which("iperf3") or sys.exit("iperf3 could not be installed")


def run_iperf3(topo: object, seconds: float) -> float:
    """Aggregate bytes/s of the 4 concurrent single-stream iperf3 clients."""
    iperf = ensure_iperf3()
    b1 = topo.host("b1")  # type: ignore[attr-defined]
    servers = [subprocess.Popen(["ip", "netns", "exec", b1.ns, iperf, "-s", "-1", "-B", b1.data_address(k),
                                 "-p", str(5201 + i)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for i, (_, _, k) in enumerate(PAIRS)]  # fmt: skip
    time.sleep(0.5)
    clients = []
    for i, (node, nic, k) in enumerate(PAIRS):
        h = topo.host(node)  # type: ignore[attr-defined]
        clients.append(subprocess.Popen(
            ["ip", "netns", "exec", h.ns, iperf, "-c", b1.data_address(k), "-B", h.data_address(nic),
             "-p", str(5201 + i), "-P", "1", "-t", f"{max(seconds, 2):.1f}", "-J"],
            stdout=subprocess.PIPE, text=True))  # fmt: skip
    total = 0.0
    for c in clients:
        out, _ = c.communicate(timeout=120)
        total += json.loads(out)["end"]["sum_received"]["bits_per_second"] / 8
    for s in servers:
        s.wait(timeout=10)
    return total


def transfer_phase(events: list[dict[str, object]]) -> float:
    planned = next(float(e["at"]) for e in events if e["event"] == "planned")  # type: ignore[arg-type]
    done = [float(e["at"]) for e in events if e["event"] == "unit done"]  # type: ignore[arg-type]
    return max(done) - planned


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=2048)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp/dms-bench-mh"))
    ap.add_argument("--warm", action="store_true", help="keep the page cache (isolates network and CPU from disk)")
    args = ap.parse_args()
    if why := netns_unavailable():
        sys.exit(f"cannot run: {why}")
    ensure_iperf3()
    from dms.client.submit import submit, wait
    from dms.request import make_params

    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="dms-mh-", dir=args.dir) as tmp, \
            multihost_deployment(Path(tmp), {"A": ["a1", "a2"], "B": ["b1"]}) as dep:  # fmt: skip
        src = dep.root / "a" / "tree"
        src.mkdir()
        size = args.size_mib * MIB // args.files
        for i in range(args.files):
            write_unique(src / f"large{i}.bin", size, i)
        total = size * args.files
        e2e, phase, iperf = [], [], []
        for run in range(args.runs):
            dst = dep.root / "b" / "tree"
            shutil.rmtree(dst, ignore_errors=True)
            if args.warm:
                subprocess.run(["sync"], check=True)
            else:
                drop_caches()
            params = make_params(str(src), str(dst), request_id=f"bench-{os.getpid()}-{run}", direction="A_TO_B",
                                 parallelism=8)  # fmt: skip
            t = time.perf_counter()
            submit(dep.app, dep.store, params)
            info = wait(dep.store, params.request_id, timeout=1800, poll=0.05)
            e2e.append(time.perf_counter() - t)
            assert info["state"] == "SUCCEEDED", info
            assert sum(p.stat().st_size for p in dst.rglob("*") if p.is_file()) == total
            phase.append(transfer_phase(dep.store.events(params.request_id)))
            iperf.append(run_iperf3(dep.topo, phase[-1]))
    med = statistics.median
    rate_e2e = [total / t for t in e2e]
    rate_phase = [total / t for t in phase]
    print(f"data: {args.files} x {size / MIB:.0f} MiB, A (a1, a2) -> B (b1), 4 streams over 4 source and 2 "
          f"destination NICs; {args.runs} runs, medians (min-max)")  # fmt: skip
    for name, values in (
        ("iperf3 (4 streams)", iperf),
        ("dms transfer phase", rate_phase),
        ("dms end to end", rate_e2e),
    ):
        print(f"{name:20s} {med(values) / MIB:7.0f} MiB/s ({min(values) / MIB:.0f}-{max(values) / MIB:.0f})  "
              f"{med(values) / med(iperf):5.2f} x iperf3")  # fmt: skip


if __name__ == "__main__":
    main()
