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

import fcntl
import socket
import struct

__all__ = ["interface_state", "usable"]

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
