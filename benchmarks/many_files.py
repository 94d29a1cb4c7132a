"""Many small files: DMS beside `rsync -a`, first sync and no-change re-sync, in one run.

    python benchmarks/many_files.py [--files 50000] [--size 4096] [--runs 3] [--dir /var/tmp/dms-bench-many]
    python benchmarks/many_files.py --files 1000000 --size 16 --runs 1 --tmpfs   # the million-file case

The tree: `--files` files of `--size` bytes, 100 per directory. DMS runs as a service (redis-server
and a 4-process worker started beforehand; `dms-submit sync --wait`). Before every run the
destination is removed (first sync only), `sync` runs and the page cache is dropped (when root).
Every destination is checked (file count, bytes, a content sample). The no-change re-sync runs
each tool into the destination it just made and must move no file data (DMS: zero transfer
tasks). While DMS runs, a sampler records the largest Redis value of the request and the largest
message waiting in a queue; at the end, the peak RSS (VmHWM) of every worker process.
With --tmpfs the tree and destinations live on a fresh tmpfs (root only), as the issue's
million-file case asks.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import drop_caches  # noqa: E402
from benchmarks.measure import peak_rss_mib  # noqa: E402
from tests.services import RedisServer, Worker  # noqa: E402


def make_tree(root: Path, files: int, size: int) -> None:
    marker = root / ".complete"
    if marker.exists() and marker.read_text() == f"{files}:{size}":
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(3)
    block = rng.randbytes(max(size, 1))
    for i in range(files):
        d = root / f"d{i // 100:05d}"
        if i % 100 == 0:
            d.mkdir(parents=True)
        (d / f"f{i}").write_bytes(i.to_bytes(8, "little")[:size] + block[8:size])
    marker.write_text(f"{files}:{size}")


def check(src: Path, dst: Path, files: int) -> None:
    got = sum(1 for p in dst.rglob("*") if p.is_file() and p.name != ".complete")
    assert got == files, f"{dst}: {got} files, expected {files}"
    for i in random.Random(1).sample(range(files), min(100, files)):
        rel = Path(f"d{i // 100:05d}") / f"f{i}"
        assert (src / rel).read_bytes() == (dst / rel).read_bytes(), rel


class Sampler(threading.Thread):
    """Largest Redis value under dms:req:*, the most the request keys held together (MEMORY
    USAGE summed over them) and Redis's used_memory over what it used before the first run,
    and the largest queued message; sampled every 0.5 s."""

    def __init__(self, socket_path: str) -> None:
        super().__init__(daemon=True)
        import redis

        self.r = redis.Redis(unix_socket_path=socket_path)
        self.stop = threading.Event()
        self.largest_value = (0, "")
        self.largest_message = 0
        self.request_keys_peak = 0
        self.peak_kinds: dict[str, int] = {}  # at the peak: key kind (unit, walk, digests, ...) -> bytes
        self.baseline = int(self.r.info("memory")["used_memory"])
        self.used_peak = 0

    def run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                used = int(self.r.info("memory")["used_memory"])
                total = 0
                kinds: dict[str, int] = {}
                for key in self.r.scan_iter("dms:req:*", count=1000):
                    size = self.r.memory_usage(key) or 0
                    total += size
                    kind = key.decode().split(":")[3] if key.count(b":") >= 3 else "request"
                    kinds[kind] = kinds.get(kind, 0) + size
                    if size > self.largest_value[0]:
                        self.largest_value = (size, key.decode())
                if total > self.request_keys_peak:
                    self.request_keys_peak, self.peak_kinds = total, kinds
                self.used_peak = max(self.used_peak, used - self.baseline)
                for queue in (b"dms.data", b"dms.control"):
                    for message in self.r.lrange(queue, 0, 50):
                        self.largest_message = max(self.largest_message, len(message))
            except Exception:  # the sampler must never break the benchmark
                continue


def timed(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True, cwd=cwd).stdout
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=50_000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp/dms-bench-many"))
    ap.add_argument("--tmpfs", action="store_true")
    args = ap.parse_args()
    if args.tmpfs:
        args.dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12g", "tmpfs", str(args.dir)], check=True)
    try:
        run(args)
    finally:
        if args.tmpfs:
            subprocess.run(["umount", "-l", str(args.dir)], check=False)


def run(args: argparse.Namespace) -> None:
    src, dst = args.dir / "src", args.dir / "dst"
    t = time.perf_counter()
    make_tree(src, args.files, args.size)
    print(f"tree: {args.files} files of {args.size} B ({time.perf_counter() - t:.0f} s to make)", flush=True)
    cli = [sys.executable, "-m", "dms.cli"]
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")}
    first: dict[str, list[float]] = {"rsync -a": [], "dms (service)": []}
    again: dict[str, list[float]] = {"rsync -a": [], "dms (service)": []}
    with tempfile.TemporaryDirectory(prefix="dms-many-") as tmp:
        redis = RedisServer(Path(tmp)).start()
        worker = Worker("bench", "dms.control,dms.data", redis.env(), Path(tmp) / "worker.log", concurrency=4).start()
        env = {**base_env, **redis.env()}
        sampler = Sampler(redis.socket)
        sampler.start()
        tools = {
            "rsync -a": ["rsync", "-a", f"{src}/", f"{dst}/"],
            "dms (service)": [*cli, "sync", str(src), str(dst), "--wait", "--json"],
        }
        last_json = {}
        try:
            for _ in range(args.runs):
                for name, argv in tools.items():
                    shutil.rmtree(dst, ignore_errors=True)
                    drop_caches()
                    seconds, out = timed(argv, env, tmp)
                    first[name].append(seconds)
                    check(src, dst, args.files)
                    drop_caches()
                    seconds, out = timed(argv, env, tmp)  # no change: nothing to move
                    again[name].append(seconds)
                    if name.startswith("dms"):
                        last_json = json.loads(out)
                        assert last_json["tasks_total"] == 0 and last_json["bytes_done"] == 0, last_json
                        assert last_json["files_uptodate"] >= args.files, last_json  # (+ the marker file)
        finally:
            sampler.stop.set()
            rss = peak_rss_mib([worker.proc.pid]) if worker.proc else {}
            worker.stop()
            redis.stop()
    med = statistics.median
    print(f"{args.runs} runs, medians (min-max); page cache dropped before every run")
    for label, table in (("first sync", first), ("no-change re-sync", again)):
        ref = med(table["rsync -a"])
        for name, values in table.items():
            print(f"{label:18s} {name:14s} {med(values):7.2f} s ({min(values):.2f}-{max(values):.2f})  "
                  f"{args.files / med(values):8.0f} files/s  {ref / med(values):5.2f} x rsync -a")  # fmt: skip
    if rss:  # 'pid name' -> MiB; the worker's main process has the lowest pid of its tree
        main = min(rss, key=lambda k: int(k.split()[0]))
        pool = max(v for k, v in rss.items() if k != main)
        print(f"peak RSS: worker main {rss[main]:.0f} MiB, "
              f"largest pool process {pool:.0f} MiB (the planner runs in one)")  # fmt: skip
    size, key = sampler.largest_value
    print(f"largest Redis value of a request: {size / 1024:.0f} KiB ({key}); "
          f"largest queued message: {sampler.largest_message} B")  # fmt: skip
    print(f"Redis peak: request keys {sampler.request_keys_peak / args.files:.1f} B per file "
          f"({sampler.request_keys_peak / 2**20:.1f} MiB); used_memory over the start "
          f"{sampler.used_peak / args.files:.1f} B per file (queued messages and result keys too)")  # fmt: skip
    kinds = sorted(sampler.peak_kinds.items(), key=lambda kv: -kv[1])
    print("  at the peak: " + ", ".join(f"{kind} {size / args.files:.1f} B" for kind, size in kinds))


if __name__ == "__main__":
    main()
