"""Beat the moment a link changes (rtnetlink's link group), not at the heartbeat's next tick.

Why: the scheduler learns which NICs a node can use from the node's heartbeat, every
`heartbeat_interval` seconds, so a NIC that went down kept getting new units until the
next one. The kernel announces every link change (up, down, carrier, address) on the
RTMGRP_LINK and RTMGRP_IPV4_IFADDR netlink groups of the worker's own network namespace.
A daemon thread blocked on that socket calls the heartbeat as soon as a change arrives,
after a short settle so a flap's burst of messages costs one beat.

Where netlink cannot be opened (not Linux, a seccomp filter), the watcher logs it and the
heartbeat's own interval is all there is.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from collections.abc import Callable

__all__ = ["LinkWatcher"]

log = logging.getLogger(__name__)

RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
#: After the first message of a change, wait this long and take the rest of the burst with it.
SETTLE_SECONDS = 0.05


class LinkWatcher:
    """Calls `on_change` (from its own thread) after each burst of link or address changes."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.on_change = on_change
        self.sock: socket.socket | None = None
        self.thread: threading.Thread | None = None
        self.stopped = threading.Event()

    def start(self) -> bool:
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # a flap's burst, and then some
            sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR))
            sock.settimeout(1.0)  # wake up to notice stop()
        except (OSError, AttributeError) as exc:  # AttributeError: no AF_NETLINK on this platform
            log.warning("link changes are not watched (%s); NIC states are read at each heartbeat only", exc)
            return False
        self.sock = sock
        self.thread = threading.Thread(target=self._run, name="dms-link-watch", daemon=True)
        self.thread.start()
        return True

    def _run(self) -> None:
        assert self.sock is not None
        while not self.stopped.is_set():
            try:
                if not self.sock.recv(65536):
                    continue
                time.sleep(SETTLE_SECONDS)
                self._drain()
            except TimeoutError:
                continue
            except OSError as exc:
                if self.stopped.is_set():
                    return
                if exc.errno != errno.ENOBUFS:  # ENOBUFS: the kernel dropped messages; a beat catches up
                    log.exception("link watcher: netlink read failed; NIC states are read at each heartbeat only")
                    return
            try:
                self.on_change()
            except Exception:  # the beat logs its own failures; this thread must live on
                log.exception("link watcher: the heartbeat after a link change failed")

    def _drain(self) -> None:
        assert self.sock is not None
        self.sock.setblocking(False)
        try:
            while self.sock.recv(65536):
                pass
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(1.0)

    def stop(self) -> None:
        self.stopped.set()
        if self.sock is not None:
            self.sock.close()
        if self.thread is not None:
            self.thread.join(timeout=2)
