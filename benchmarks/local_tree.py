"""DMS beside cp -a and rsync -a on one generated tree, local disk to disk, in one run.

    python benchmarks/local_tree.py [--scale 1.0] [--runs 3] [--dir /var/tmp/dms-bench]

The tree (scale 1.0, about 1 GiB): 3 x 256 MiB, 200 x ~1 MiB in 10 directories, 3,000 small
files of 0-9 KiB in 20 directories. Tools alternate within each repetition; before every run the
destination is removed, `sync` runs and the page cache is dropped (when root). DMS runs three ways:
as a service (redis-server and a 4-process worker started beforehand, `dms-submit sync --wait`),
the same with --no-fsync (cp and rsync do not flush either), and embedded (one command that
starts and stops its own redis-server and worker). Every
destination is checked (file count, bytes, sampled contents) before its time counts.
Then a no-change re-sync (rsync -a and DMS as a service) into the destination the last run
left. Prints median (min-max) seconds, MiB/s and the ratio of each tool's speed to the reference.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1 << 20
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import drop_caches, report  # noqa: E402
from tests.services import RedisServer, Worker  # noqa: E402  (real processes, as in the tests)


def write_file(path: Path, size: int, seed: int) -> None:
    block = random.Random(seed).randbytes(MIB)
    with open(path, "wb") as f:
        for i in range(0, size, MIB):
            f.write((i.to_bytes(8, "little") + block[8:])[: min(MIB, size - i)])


def make_tree(root: Path, scale: float) -> None:
    marker = root / ".complete"
    if marker.exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(1)
    (root / "large").mkdir(parents=True)
    for i in range(3):
        write_file(root / "large" / f"part{i}.bin", int(256 * MIB * scale), i)
    for i in range(int(200 * scale)):
        d = root / "medium" / f"m{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        write_file(d / f"file{i}", MIB + i, 100 + i)
    for i in range(int(3000 * scale)):
        d = root / "small" / f"s{i % 20}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}").write_bytes(rng.randbytes(rng.randrange(0, 9 * 1024)))
    marker.touch()


def check(src: Path, dst: Path) -> None:
    files = [p.relative_to(src) for p in src.rglob("*") if p.is_file() and p.name != ".complete"]
    got = [p for p in dst.rglob("*") if p.is_file() and p.name != ".complete"]
    assert len(got) == len(files), f"{dst}: {len(got)} files, expected {len(files)}"
    assert sum(p.stat().st_size for p in got) == sum((src / f).stat().st_size for f in files)
    for rel in random.Random(0).sample(files, min(50, len(files))):
        assert filecmp.cmp(src / rel, dst / rel, shallow=False), f"{rel} differs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp/dms-bench"))
    args = ap.parse_args()
    src, dst = args.dir / "src", args.dir / "dst"
    make_tree(src, args.scale)
    total = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    cli = [sys.executable, "-m", "dms.cli"]
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")}
    with tempfile.TemporaryDirectory(prefix="dms-bench-") as tmp:
        redis = RedisServer(Path(tmp)).start()
        worker = Worker("bench", "dms.control,dms.data", redis.env(), Path(tmp) / "worker.log", concurrency=4).start()
        service_env = {**base_env, **redis.env()}
        embedded_env = {**base_env, "DMS_HOME": str(Path(tmp) / "home")}
        tools = {
            "cp -a": (["cp", "-a", f"{src}/.", str(dst)], base_env),
            "rsync -a": (["rsync", "-a", f"{src}/", f"{dst}/"], base_env),
            "dms (service)": ([*cli, "sync", str(src), str(dst), "--wait"], service_env),
            "dms (svc,nofsync)": ([*cli, "sync", str(src), str(dst), "--wait", "--no-fsync"], service_env),
            "dms (embedded)": ([*cli, "sync", str(src), str(dst), "--wait"], embedded_env),
        }
        times: dict[str, list[float]] = {name: [] for name in tools}
        resync: dict[str, list[float]] = {}
        try:
            for _ in range(args.runs):
                for name, (argv, env) in tools.items():
                    shutil.rmtree(dst, ignore_errors=True)
                    if name.startswith("cp"):
                        dst.mkdir()
                    drop_caches()
                    t = time.perf_counter()
                    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, cwd=tmp)
                    times[name].append(time.perf_counter() - t)
                    check(src, dst)
            # no-change re-sync: the destination already holds the tree (the last tool wrote it)
            for _ in range(args.runs):
                for name, (argv, env) in tools.items():
                    if name in ("rsync -a", "dms (service)"):
                        drop_caches()
                        t = time.perf_counter()
                        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, cwd=tmp)
                        resync.setdefault(name, []).append(time.perf_counter() - t)
        finally:
            worker.stop()
            redis.stop()
    print(f"tree: {total / MIB:.0f} MiB, {sum(1 for p in src.rglob('*') if p.is_file()) - 1} files; {args.runs} runs")
    report(times, total / MIB, "cp -a")
    print("no-change re-sync (nothing to copy):")
    report(resync, total / MIB, "rsync -a")


if __name__ == "__main__":
    main()
