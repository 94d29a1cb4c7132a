"""Whether a network interface can carry traffic now (administratively up, with carrier).

Asked of the kernel with SIOCGIFFLAGS on a socket, so the answer is for the network
namespace the worker runs in (sysfs shows the namespace it was mounted in). A NIC that
is down or has lost its carrier is "down": the heartbeat stops announcing it, so no new
unit is routed over it, and a unit that its queue delivers anyway is sent from another
NIC of the node (dms.tasks.transfer). A name the kernel does not know is "unknown" and
treated as up (its state cannot be watched; the worker logs that once), so a label that
is not a device name keeps working as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import socket
import struct
import subprocess
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dms.config import DmsConfig, Endpoint

__all__ = ["interface_state", "misrouted_peers", "route_device", "usable"]

_SIOCGIFFLAGS = 0x8913
_IFF_UP = 0x1
_IFF_RUNNING = 0x40


def interface_state(name: str) -> str:
    """ "up" (administratively up, with carrier), "down", or "unknown" (no such device here)."""
    request = struct.pack("16sH14x", name.encode()[:15], 0)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            answer = fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, request)
    except OSError:  # ENODEV: no such interface in this network namespace
        return "unknown"
    flags = struct.unpack("16sH14x", answer)[1]
    return "up" if flags & _IFF_UP and flags & _IFF_RUNNING else "down"


def usable(name: str) -> bool:
    """Whether to send from (and announce) this NIC: anything but known-down."""
    return interface_state(name) != "down"


def route_device(source: str, peer: str) -> str | None:
    """The device the kernel sends from `source` to `peer` through (`ip route get PEER from
    SOURCE`, policy rules included), or None when it cannot tell (no `ip`, no route)."""
    ip = shutil.which("ip")
    if ip is None:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError, IndexError, KeyError, TypeError):
        out = subprocess.run([ip, "-j", "route", "get", peer, "from", source], capture_output=True, text=True,
                             timeout=2, check=False)  # fmt: skip
        if out.returncode == 0:
            return str(json.loads(out.stdout)[0]["dev"])
    return None


def misrouted_peers(interface: str, source: str, peers: Iterable[str]) -> list[str]:
    """The peers that traffic from `source` (the address of `interface`) would reach through
    another device: the NIC is up, but its policy route is gone (the kernel drops a
    device's routes when its link goes down, and they do not come back by themselves), so
    replies to what it receives leave through another NIC. Such a NIC is degraded."""
    wrong = []
    for peer in peers:
        dev = route_device(source, peer)
        if dev is not None and dev != interface:
            wrong.append(peer)
    return wrong


def same_rail(a: str, b: str) -> bool:
    """Whether NICs with rail labels (workers.yml `network:`) `a` and `b` may carry bytes to
    each other: the same label, or either unlabelled. The one rule of placement's candidate
    paths (dms.route.policies) and of the route check's peers (peers_of)."""
    return not a or not b or a == b


def peers_of(nic: Endpoint, cluster: str, config: DmsConfig) -> list[str]:
    """The data addresses a node's `nic` may send to: every data NIC of the other clusters on
    its rail. Only these are route-checked (misrouted_peers): a peer on another rail is
    reached through the default route, which says nothing of this NIC's own route."""
    return sorted({peer.address for c in config.clusters.values() if c.name != cluster
                   for node in c.nodes for peer in node.data if same_rail(nic.network, peer.network)})  # fmt: skip
