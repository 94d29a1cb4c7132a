"""Chaos: requests of mixed shapes across two clusters while a seeded schedule injects faults.

The namespace harness (tests/netns.py): a1 and a2 (cluster A), b1 (cluster B), each in its own
network namespace with two data NICs; Redis in its own namespace with AOF on. Before each
fault a new request starts, so every fault hits a transfer in flight. The faults: a worker
SIGKILLed and restarted quickly (1-3 s) or slowly (after its heartbeat lapsed), a worker
SIGSTOPped and continued, Redis SIGTERMed or SIGKILLed and restarted, a data NIC down and up,
and a rotation of the data-plane secret done node by node (docs/operations.md). Every request
must end SUCCEEDED by itself, every tree identical to its source, no staging file left, no
worker exited. It prints each fault and how long until bytes moved again.

CI runs the short schedule (each fault once, in a seeded order); `pytest --long` runs
LONG_FAULTS faults drawn at random. DMS_CHAOS_SEED picks the seed (printed).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dms.client.submit import submit, wait
from dms.request import make_params
from tests.clusters import Deployment, NodeWorker, multihost_deployment
from tests.conftest import unique_id
from tests.netns import netns_unavailable
from tests.trees import MIB, assert_same_tree, make_tree, write_unique

_why = netns_unavailable()
pytestmark = pytest.mark.skipif(_why is not None, reason=_why or "")

HEARTBEAT_TTL = 6
KINDS = ("worker_kill_quick", "worker_kill_slow", "worker_stop", "redis_term", "redis_kill", "nic_flap", "rotate")
LONG_FAULTS = 24


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("chaos")
    defaults = {"chunk_size": "8MiB", "parallelism": 6, "data_timeout": 10, "heartbeat_interval": 1,
                "heartbeat_ttl": HEARTBEAT_TTL, "stall_timeout": 30}  # fmt: skip
    aof = ("--appendonly", "yes", "--appendfsync", "always")
    with multihost_deployment(root, {"A": ["a1", "a2"], "B": ["b1"]}, defaults=defaults, redis_options=aof) as mh:
        yield mh


def _tree(root: Path, shape: int, seed: int) -> None:
    """Three shapes in turn: many small files; a few large ones; a mix."""
    if shape == 0:
        make_tree(root, files=400, seed=seed)
    elif shape == 1:
        root.mkdir(parents=True)
        for i in range(4):
            write_unique(root / f"big{i}.bin", 40 * MIB, seed * 10 + i)
    else:
        make_tree(root, files=120, big_files=3, big_size=24 * MIB, seed=seed)
        os.symlink("dir0/file0.txt", root / "link")


class Schedule:
    def __init__(self, mh: Deployment, rng: random.Random) -> None:
        self.mh = mh
        self.rng = rng
        self.requests: list[tuple[str, Path, Path]] = []
        self.log: list[str] = []

    def moved(self) -> int:
        return sum(int((self.mh.store.get(rid) or {}).get("bytes_done", 0)) for rid, _, _ in self.requests)

    def start_request(self, k: int) -> str:
        src, dst = self.mh.root / "a" / f"chaos{k}", self.mh.root / "b" / f"chaos{k}"
        _tree(src, k % 3, seed=1000 + k)
        params = make_params(str(src), str(dst), request_id=unique_id(f"chaos{k}"), direction="A_TO_B")
        submit(self.mh.app, self.mh.store, params)
        self.requests.append((params.request_id, src, dst))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            info = self.mh.store.get(params.request_id) or {}
            if info.get("bytes_done", 0) > 0 or info.get("state") in ("SUCCEEDED", "FAILED", "CANCELLED"):
                break
            time.sleep(0.05)
        return params.request_id

    def inject(self, kind: str) -> None:
        """One fault, then wait until bytes move again (or nothing is left to move)."""
        before = time.monotonic()
        detail = getattr(self, kind)()
        restored = time.monotonic()
        start = self.moved()
        deadline = restored + 300
        while time.monotonic() < deadline:
            if self.moved() > start or all(
                (self.mh.store.get(rid) or {}).get("state") in ("SUCCEEDED", "FAILED", "CANCELLED")
                for rid, _, _ in self.requests
            ):
                break
            time.sleep(0.1)
        line = (f"{kind:18} {detail:28} fault lasted {restored - before:5.1f} s, bytes moving again "
                f"{time.monotonic() - restored:5.1f} s after")  # fmt: skip
        self.log.append(line)
        print(line, flush=True)

    def _worker(self) -> NodeWorker:
        return self.mh.workers[self.rng.choice(sorted(self.mh.workers))]

    def _kill(self, worker: NodeWorker, pause: float) -> None:
        assert worker.proc is not None
        os.killpg(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait()
        worker.proc = None
        time.sleep(pause)
        worker.start()

    def worker_kill_quick(self) -> str:
        w = self._worker()
        self._kill(w, self.rng.uniform(1, 3))
        return w.node

    def worker_kill_slow(self) -> str:
        w = self._worker()
        self._kill(w, HEARTBEAT_TTL + 4)  # seen silent: the janitor routes its work elsewhere first
        return w.node

    def worker_stop(self) -> str:
        w = self._worker()
        assert w.proc is not None
        os.killpg(w.proc.pid, signal.SIGSTOP)
        time.sleep(3)
        os.killpg(w.proc.pid, signal.SIGCONT)
        return w.node

    def _redis(self, how: signal.Signals) -> str:
        server = self.mh.redis
        os.killpg(server.proc.pid, how)
        server.proc.wait()
        server.proc = None
        time.sleep(self.rng.uniform(1, 3))
        server.start()
        return how.name

    def redis_term(self) -> str:
        return self._redis(signal.SIGTERM)

    def redis_kill(self) -> str:
        return self._redis(signal.SIGKILL)

    def nic_flap(self) -> str:
        host, iface = self.rng.choice(["a1", "a2", "b1"]), self.rng.choice(["d0", "d1"])
        self.mh.topo.set_link(host, iface, up=False)
        time.sleep(5)
        self.mh.topo.set_link(host, iface, up=True)
        return f"{host}/{iface}"

    def rotate(self) -> str:
        """The documented rotation, with the one secret file every node here shares."""
        secret = self.mh.root / "secret"
        old = secret.read_bytes().strip()
        new = os.urandom(24).hex().encode()
        for content in (new + b"\n" + old, new):
            secret.write_bytes(content + b"\n")
            for name in sorted(self.mh.workers):
                self.mh.workers[name].stop()
                self.mh.workers[name].start()
        return "all nodes"


@pytest.mark.timeout(1800)
def test_requests_finish_by_themselves_through_a_seeded_fault_schedule(
    chaos: Deployment, request: pytest.FixtureRequest
) -> None:
    seed = int(os.environ.get("DMS_CHAOS_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    long = bool(request.config.getoption("--long"))
    kinds = [rng.choice(KINDS) for _ in range(LONG_FAULTS)] if long else rng.sample(KINDS, len(KINDS))
    print(f"\nchaos seed {seed} ({'long' if long else 'short'} schedule: {len(kinds)} faults)", flush=True)
    schedule = Schedule(chaos, rng)
    for k, kind in enumerate(kinds):
        schedule.start_request(k)
        schedule.inject(kind)
    for rid, src, dst in schedule.requests:
        info = wait(chaos.store, rid, timeout=600)
        assert info["state"] == "SUCCEEDED", (seed, schedule.log, info, chaos.store.errors(rid))
        assert_same_tree(src, dst)
    staged = [p for p in (chaos.root / "b").rglob("*") if p.name.endswith(".partial")]
    assert not staged, (seed, staged)
    for name, w in chaos.workers.items():
        log = w.log()
        assert w.proc is not None and w.proc.poll() is None, (name, log[-3000:])
        assert "Unrecoverable error" not in log, (name, log[-3000:])
    print("\n".join([f"chaos summary (seed {seed}):", *schedule.log]), flush=True)
