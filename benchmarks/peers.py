"""The tools DMS is measured beside, and the servers some of them need.

Each `Tool` knows its command line for (source, destination), the destination base
it must write under (a TCP server serves one directory), and which long-running
processes count as its server side (for CPU seconds and peak RSS). Missing Debian
packages are installed when running as root; a tool that still cannot run is
skipped with a note, never silently.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.clusters import NodeWorker, free_port, write_config, write_secret  # noqa: E402
from tests.services import RedisServer, Worker  # noqa: E402

__all__ = ["Bench", "Tool", "ensure_packages"]

PACKAGES = {  # binary -> Debian package
    "rsync": "rsync",
    "rclone": "rclone",
    "fpsync": "fpart",
    "globus-url-copy": "globus-gass-copy-progs",
    "globus-gridftp-server": "globus-gridftp-server-progs",
    "iperf3": "iperf3",
    "redis-server": "redis-server",
}
DMS_CLI = [sys.executable, "-m", "dms.cli"]
#: DMS's worker processes: 2 per core is the operations.md starting point for disk copies.
DMS_CONCURRENCY = max(2, 2 * (os.cpu_count() or 1))


def ensure_packages(binaries: list[str], notes: list[str]) -> set[str]:
    """Install what is missing (root, apt); return the binaries that are usable."""
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        packages = sorted({PACKAGES[b] for b in missing})
        print(f"installing {' '.join(packages)}", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-q", *packages], env=env, capture_output=True)
    usable = {b for b in binaries if shutil.which(b) is not None}
    for b in sorted(set(binaries) - usable):
        notes.append(f"{b} (Debian package {PACKAGES[b]}) is not installed and could not be installed: skipped")
    return usable


@dataclass
class Tool:
    name: str
    group: str  # "local" or "tcp"
    argv: Callable[[Path, Path], list[str]]
    dst_base: Path
    env: dict[str, str] = field(default_factory=dict)
    server_pids: Callable[[], list[int]] = lambda: []
    dms: bool = False
    resync: bool = False  # measured again on its own destination (no-change re-sync)
    memory_only: bool = False  # iperf3: no files, nothing to verify
    reference: bool = False  # a limit measured beside the tools (the disk floor): writes no copy to verify
    parse: Callable[[str], dict[str, float]] | None = None


@dataclass
class Bench:
    """Every tool and server of one benchmark run; `close()` stops the servers and, unless
    `keep`, removes what the run made under `work` (destinations, server scratch): a full run
    leaves about 30 GB there otherwise. The generated datasets (`work/data`) stay for the next run."""

    work: Path
    notes: list[str] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    keep: bool = False
    _stop: list[Callable[[], None]] = field(default_factory=list)
    _made: list[Path] = field(default_factory=list)
    dms_pids: Callable[[], list[int]] = lambda: []

    def scratch(self, name: str) -> Path:
        """`work/name`, a destination or server file of this run, removed by close()."""
        path = self.work / name
        self._made.append(path)
        return path

    def close(self) -> None:
        for stop in reversed(self._stop):
            try:
                stop()
            except Exception as exc:  # stopping must not hide the results
                print(f"warning: stopping a server: {exc}", file=sys.stderr)
        if self.keep:
            return
        for path in dict.fromkeys(self._made):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    # -- local tools ---------------------------------------------------------------
    def add_local(self, usable: set[str]) -> None:
        base = self.scratch("dst-local")
        base.mkdir(parents=True, exist_ok=True)
        self.tools.append(Tool("cp -a", "local", lambda s, d: ["cp", "-a", "--", f"{s}/.", str(d)], base))
        if "rsync" in usable:
            self.tools.append(Tool("rsync -a", "local", lambda s, d: ["rsync", "-a", f"{s}/", f"{d}/"], base,
                                   resync=True))  # fmt: skip
        if "rclone" in usable:
            self.tools.append(Tool("rclone copy", "local", lambda s, d: [
                "rclone", "copy", str(s), str(d), "--transfers", "8", "--multi-thread-streams", "4",
                "--checkers", "16", "--config", "/dev/null", "-q"], base, resync=True))  # fmt: skip
        if "fpsync" in usable:
            scratch = str(self.scratch("fpsync"))
            self.tools.append(Tool("fpsync -n 4", "local", lambda s, d: [
                "fpsync", "-n", "4", "-t", scratch, f"{s}/", f"{d}/"], base, resync=True))  # fmt: skip
        self._add_dms_service(base)
        home = self.scratch("embedded-home")
        env = {"DMS_HOME": str(home)}
        self.tools.append(Tool("dms (embedded)", "local", lambda s, d: [*DMS_CLI, "sync", str(s), str(d), "--json"],
                               base, env=env, dms=True))  # fmt: skip

    def _add_dms_service(self, base: Path) -> None:
        tmp = self.scratch(Path(tempfile.mkdtemp(prefix="dms-bench-svc-", dir=self.work)).name)
        redis = RedisServer(tmp).start()
        self._stop.append(redis.stop)
        worker = Worker("bench", "dms.control,dms.data", redis.env(), tmp / "worker.log",
                        concurrency=DMS_CONCURRENCY).start()  # fmt: skip
        self._stop.append(worker.stop)

        def pids() -> list[int]:
            return [p for p in (redis.proc.pid if redis.proc else None, worker.proc.pid if worker.proc else None) if p]

        self.dms_pids = lambda: [worker.proc.pid] if worker.proc else []
        self.tools.append(Tool("dms (service)", "local",
                               lambda s, d: [*DMS_CLI, "sync", str(s), str(d), "--wait", "--json"], base,
                               env=redis.env(), server_pids=pids, dms=True, resync=True))  # fmt: skip

    def disk_floor(self, group: str) -> Tool:
        """The disk's limit for copying L (benchmarks/disk_floor.py), to run in `group`'s rotation."""
        base = self.scratch(f"floor-{group}")
        base.mkdir(parents=True, exist_ok=True)
        script = str(Path(__file__).with_name("disk_floor.py"))
        return Tool("disk floor", group, lambda s, d: [sys.executable, script, str(s), str(d)], base, reference=True,
                    parse=_floor_result)  # fmt: skip

    # -- tools over TCP (loopback) ----------------------------------------------------
    def add_tcp(self, usable: set[str]) -> None:
        if "iperf3" in usable:
            self._add_iperf3()
        if "rsync" in usable:
            self._add_rsync_daemon()
        if {"globus-url-copy", "globus-gridftp-server"} <= usable:
            self._add_gridftp()
        self._add_dms_tcp()

    def _add_iperf3(self) -> None:
        port = free_port()
        proc = subprocess.Popen(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        self._stop.append(lambda: _stop(proc))
        time.sleep(0.3)

        self.tools.append(Tool("iperf3 -P 4", "tcp", lambda s, d: [], self.work, server_pids=lambda: [proc.pid],
                               memory_only=True, parse=_iperf3_result))  # fmt: skip
        self._iperf3_port = port

    def iperf3_argv(self, nbytes: int) -> list[str]:
        return ["iperf3", "-c", "127.0.0.1", "-p", str(self._iperf3_port), "-P", "4", "-n", str(nbytes), "-J"]

    def _add_rsync_daemon(self) -> None:
        base = self.scratch("dst-rsyncd")
        base.mkdir(parents=True, exist_ok=True)
        port = free_port()
        conf = self.scratch("rsyncd.conf")
        conf.write_text(_rsyncd_conf(base))
        proc = subprocess.Popen(["rsync", "--daemon", "--no-detach", f"--config={conf}", "--address", "127.0.0.1",
                                 "--port", str(port)], start_new_session=True)  # fmt: skip
        self._stop.append(lambda: _stop(proc))
        time.sleep(0.3)
        self.tools.append(Tool("rsync daemon", "tcp", lambda s, d: [
            "rsync", "-a", f"{s}/", f"rsync://127.0.0.1:{port}/bench/{d.relative_to(base)}/"], base,
            server_pids=lambda: [proc.pid]))  # fmt: skip

    def _add_gridftp(self) -> None:
        base = self.scratch("dst-gridftp")
        base.mkdir(parents=True, exist_ok=True)
        base.chmod(0o777)  # the anonymous user (nobody) writes here
        port = free_port()
        proc = subprocess.Popen(["globus-gridftp-server", "-aa", "-anonymous-user", "nobody", "-p", str(port),
                                 "-d", "error", "-no-detach", "-l", str(self.scratch("gridftp.log"))],
                                start_new_session=True)  # fmt: skip
        self._stop.append(lambda: _stop(proc))
        time.sleep(0.5)
        self.tools.append(Tool("globus-url-copy -p 4", "tcp", lambda s, d: [
            "globus-url-copy", "-p", "4", "-fast", "-r", "-cd", f"file://{s}/", f"ftp://127.0.0.1:{port}{d}/"], base,
            server_pids=lambda: [proc.pid]))  # fmt: skip

    def _add_dms_tcp(self) -> None:
        """Two one-node clusters on loopback: a1 (127.0.0.1) pushes to b1's receiver (127.0.0.2)."""
        tmp = self.scratch(Path(tempfile.mkdtemp(prefix="dms-bench-tcp-", dir=self.work)).name)
        base = self.scratch("dst-dms-tcp")
        base.mkdir(parents=True, exist_ok=True)
        redis = RedisServer(tmp).start()
        self._stop.append(redis.stop)
        secret = write_secret(tmp / "secret")
        node = {"port": 0, "concurrency": DMS_CONCURRENCY, "secret_file": str(secret)}
        config = write_config(tmp / "workers.yml", {
            "A": {"nodes": {"a1": {**node, "data": [{"interface": "lo", "address": "127.0.0.1"}],
                                   "port": free_port(), "roots": [str(self.work)]}}},
            "B": {"nodes": {"b1": {**node, "data": [{"interface": "lo", "address": "127.0.0.2"}],
                                   "port": free_port("127.0.0.2"), "roots": [str(base)]}}},
        })  # fmt: skip
        workers = [NodeWorker(n, config, redis.env(), tmp / f"{n}.log").start() for n in ("a1", "b1")]
        for w in workers:
            self._stop.append(w.stop)
        env = {**redis.env(), "DMS_CONFIG": str(config)}

        def pids() -> list[int]:
            return [p.proc.pid for p in workers if p.proc] + ([redis.proc.pid] if redis.proc else [])

        self.tools.append(Tool("dms (tcp)", "tcp", lambda s, d: [
            *DMS_CLI, "sync", str(s), str(d), "--from", "A", "--to", "B", "--wait", "--json"], base, env=env,
            server_pids=pids, dms=True))  # fmt: skip
        self.dms_tcp_pids = lambda: [w.proc.pid for w in workers if w.proc]

    # -- the same over a veth pair: two network namespaces joined by a bridge ---------------
    def add_veth(self, usable: set[str], source: Path) -> Path:
        """Hosts a1 and b1 (tests/netns.py), one data NIC each; every server runs in b1's
        namespace on b1's data address, every client in a1's. Returns where the source must
        be (under a1's root: a hard-linked copy of `source`, no extra bytes)."""
        import contextlib

        from tests.clusters import multihost_deployment

        root = self.scratch("veth")
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        stack = contextlib.ExitStack()
        self._stop.append(stack.close)
        deployment = stack.enter_context(multihost_deployment(root, {"A": ["a1"], "B": ["b1"]},
                                                              concurrency=DMS_CONCURRENCY, data_nics=1))  # fmt: skip
        a1, b1 = deployment.topo.host("a1"), deployment.topo.host("b1")
        client, server = ["ip", "netns", "exec", a1.ns], ["ip", "netns", "exec", b1.ns]
        address = b1.data_address(0)
        linked = root / "a" / source.name
        subprocess.run(["cp", "-al", str(source), str(linked)], check=True)
        if "iperf3" in usable:
            proc = subprocess.Popen([*server, "iperf3", "-s", "-B", address, "-p", "5201"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
            self._stop.append(lambda: _stop(proc))
            self.tools.append(Tool("iperf3 -P 4 (veth)", "veth", lambda s, d: [], root, memory_only=True,
                                   server_pids=lambda: [proc.pid], parse=_iperf3_result))  # fmt: skip
            self.veth_iperf3 = [*client, "iperf3", "-c", address, "-p", "5201", "-P", "4", "-J", "-n"]
        if "rsync" in usable:
            base = root / "b" / "rsyncd"
            base.mkdir(parents=True)
            conf = root / "rsyncd.conf"
            conf.write_text(_rsyncd_conf(base))
            rsyncd = subprocess.Popen([*server, "rsync", "--daemon", "--no-detach", f"--config={conf}", "--address",
                                       address, "--port", "8730"], start_new_session=True)  # fmt: skip
            self._stop.append(lambda: _stop(rsyncd))
            self.tools.append(Tool("rsync daemon (veth)", "veth", lambda s, d: [
                *client, "rsync", "-a", f"{s}/", f"rsync://{address}:8730/bench/{d.name}/"], base,
                server_pids=lambda: [rsyncd.pid]))  # fmt: skip
        if {"globus-url-copy", "globus-gridftp-server"} <= usable:
            gbase = root / "b" / "gridftp"
            gbase.mkdir(parents=True)
            gbase.chmod(0o777)
            gftp = subprocess.Popen([*server, "globus-gridftp-server", "-aa", "-anonymous-user", "nobody", "-p", "2811",
                                     "-d", "error", "-no-detach", "-data-interface", address,
                                     "-l", str(root / "gridftp.log")], start_new_session=True)  # fmt: skip
            self._stop.append(lambda: _stop(gftp))
            self.tools.append(Tool("globus-url-copy -p 4 (veth)", "veth", lambda s, d: [
                *client, "globus-url-copy", "-p", "4", "-fast", "-r", "-cd", f"file://{s}/",
                f"ftp://{address}:2811{d}/"], gbase, server_pids=lambda: [gftp.pid]))  # fmt: skip
        dbase = root / "b" / "dms"
        dbase.mkdir(parents=True)
        sock = root / "redis.sock"
        env = {"DMS_BROKER_URL": f"redis+socket://{sock}?virtual_host=0", "DMS_RESULT_BACKEND":
               f"redis+socket://{sock}?virtual_host=0", "DMS_STATE_URL": f"unix://{sock}?db=0",
               "DMS_CONFIG": str(deployment.config)}  # fmt: skip
        workers = list(deployment.workers.values())
        self.tools.append(Tool("dms (veth)", "veth", lambda s, d: [
            *DMS_CLI, "sync", str(s), str(d), "--from", "A", "--to", "B", "--wait", "--json"], dbase, env=env,
            server_pids=lambda: [w.proc.pid for w in workers if w.proc], dms=True))  # fmt: skip
        self.dms_veth_pids = lambda: [w.proc.pid for w in workers if w.proc]
        time.sleep(0.5)
        return linked


def _rsyncd_conf(path: Path) -> str:
    return f"use chroot = no\n[bench]\n  path = {path}\n  read only = no\n  uid = root\n  gid = root\n"


def _iperf3_result(out: str) -> dict[str, float]:
    end = json.loads(out)["end"]["sum_received"]
    return {"bytes": float(end["bytes"]), "seconds": float(end["seconds"])}


def _floor_result(out: str) -> dict[str, float]:
    seconds, _, nbytes, _ = out.split()
    return {"bytes": float(nbytes), "seconds": float(seconds)}


def _stop(proc: subprocess.Popen[bytes]) -> None:
    from dms.client.processes import stop_process_group

    stop_process_group(proc)
