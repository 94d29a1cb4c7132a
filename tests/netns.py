"""A real multi-host network on one machine: network namespaces, veth links, two bridges.

    control network 10.77.0.0/24 (bridge bctl)     data network 10.78.0.0/24 (bridge bdata)
    ┌──────────┐                                   every data NIC of every host is on the
    │ redis    │ c0 10.77.0.1                      same subnet, so each host needs
    ├──────────┤                                   arp_ignore/arp_announce and one policy
    │ host h   │ c0 10.77.0.x   d0, d1 10.78.0.y   routing table per NIC (decision 0023,
    └──────────┘                                   F12), which is set up here.

The bridges live in a switch namespace; nothing is added to the caller's own
namespace. Needs root (CAP_NET_ADMIN). `down()` deletes every namespace, which
deletes every veth with it. Used by tests/integration/test_multihost.py and by
benchmarks/multihost.py, so both measure the same topology.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

CONTROL_NET = "10.77.0"
DATA_NET = "10.78.0"


def netns_unavailable() -> str | None:
    """Why namespace tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "network namespace tests need root (CAP_NET_ADMIN); CI runs as root"
    if shutil.which("ip") is None:
        return "iproute2 ('ip') is not installed; the README's test command installs it"
    probe = subprocess.run(["ip", "netns", "add", f"dmsprobe{os.getpid()}"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create a network namespace: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", f"dmsprobe{os.getpid()}"], capture_output=True)
    return None


def run(*args: str, ns: str | None = None) -> str:
    cmd = ["ip", "netns", "exec", ns, *args] if ns else list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return proc.stdout


@dataclass
class Host:
    name: str  # the DMS node name (a1, b1) or "redis"
    index: int  # 1..: the last octet base of its addresses
    data_nics: int
    ns: str = ""

    @property
    def control_address(self) -> str:
        return f"{CONTROL_NET}.{self.index}"

    def data_address(self, k: int) -> str:
        return f"{DATA_NET}.{self.index * 10 + k + 1}"

    def data_interfaces(self) -> list[str]:
        return [f"d{k}" for k in range(self.data_nics)]


@dataclass
class Topology:
    tag: str
    hosts: list[Host] = field(default_factory=list)

    @classmethod
    def build(cls, nodes: Sequence[str], data_nics: int = 2) -> Topology:
        """A redis host plus one host per node name, each node with `data_nics` data NICs."""
        topo = cls(tag=f"dms{os.getpid() % 100000}")
        topo.hosts = [Host("redis", 1, 0)] + [Host(n, i + 2, data_nics) for i, n in enumerate(nodes)]
        try:
            topo._up()
        except Exception:
            topo.down()
            raise
        return topo

    @property
    def switch(self) -> str:
        return f"{self.tag}-sw"

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    @property
    def redis_address(self) -> str:
        return self.host("redis").control_address

    def _up(self) -> None:
        self.down()
        run("ip", "netns", "add", self.switch)
        for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "link", "add", "bctl", "type", "bridge"],
                    ["ip", "link", "add", "bdata", "type", "bridge"], ["ip", "link", "set", "bctl", "up"],
                    ["ip", "link", "set", "bdata", "up"]):  # fmt: skip
            run(*cmd, ns=self.switch)
        for h in self.hosts:
            h.ns = f"{self.tag}-{h.name}"
            run("ip", "netns", "add", h.ns)
            for key, value in (("all.arp_ignore", 1), ("all.arp_announce", 2), ("all.rp_filter", 0),
                               ("default.rp_filter", 0), ("default.arp_ignore", 1),
                               ("default.arp_announce", 2)):  # fmt: skip
                run("sysctl", "-qw", f"net.ipv4.conf.{key}={value}", ns=h.ns)
            run("ip", "link", "set", "lo", "up", ns=h.ns)
            self._link(h, "c0", f"{h.index}c", "bctl", h.control_address)
            for k, iface in enumerate(h.data_interfaces()):
                address = h.data_address(k)
                self._link(h, iface, f"{h.index}{iface}", "bdata", address)
                table = str(100 + k)
                run("ip", "rule", "add", "from", address, "table", table, ns=h.ns)
                run("ip", "route", "add", f"{DATA_NET}.0/24", "dev", iface, "src", address, "table", table, ns=h.ns)

    def set_link(self, host: str, iface: str, up: bool) -> None:
        """Take a data NIC down (`ip link set ... down`) or bring it back with its policy route
        (the kernel drops a device's routes when it goes down)."""
        h = self.host(host)
        run("ip", "link", "set", iface, "up" if up else "down", ns=h.ns)
        if up:
            k = h.data_interfaces().index(iface)
            run("ip", "route", "replace", f"{DATA_NET}.0/24", "dev", iface, "src", h.data_address(k),
                "table", str(100 + k), ns=h.ns)  # fmt: skip

    def isolate(self, host: str, iface: str, isolated: bool) -> None:
        """A black hole: take the NIC's switch port off the bridge (or put it back). Both ends
        stay up with carrier, so neither host sees anything wrong; frames to and from the NIC
        just vanish, as behind a dead switch port or a lost fibre in one direction."""
        h = self.host(host)
        port = self._peer(f"{h.index}{iface}")
        if isolated:
            run("ip", "link", "set", port, "nomaster", ns=self.switch)
        else:
            run("ip", "link", "set", port, "master", "bdata", "up", ns=self.switch)

    def _peer(self, suffix: str) -> str:
        return f"{self.tag[-6:]}{suffix}"[:15]

    def _link(self, h: Host, iface: str, peer_suffix: str, bridge: str, address: str) -> None:
        peer = self._peer(peer_suffix)
        run("ip", "link", "add", iface, "netns", h.ns, "type", "veth", "peer", "name", peer, "netns", self.switch)
        run("ip", "link", "set", peer, "master", bridge, "up", ns=self.switch)
        run("ip", "addr", "add", f"{address}/24", "dev", iface, ns=h.ns)
        run("ip", "link", "set", iface, "up", ns=h.ns)

    def counters(self) -> dict[str, tuple[int, int]]:
        """'<host>/<iface>' -> (rx_bytes, tx_bytes) for every control and data NIC."""
        out = {}
        for h in self.hosts:
            for iface in ["c0", *h.data_interfaces()]:
                info = json.loads(run("ip", "-n", h.ns, "-j", "-s", "link", "show", "dev", iface))[0]
                stats = info["stats64"]
                out[f"{h.name}/{iface}"] = (int(stats["rx"]["bytes"]), int(stats["tx"]["bytes"]))
        return out

    def down(self) -> None:
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        for line in listed.splitlines():
            name = line.split()[0] if line.split() else ""
            if name.startswith(f"{self.tag}-"):
                subprocess.run(["ip", "netns", "del", name], capture_output=True)


def counter_delta(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    return {k: (after[k][0] - before[k][0], after[k][1] - before[k][1]) for k in after}
