"""The data receiver process of one node: `python -m dms.worker.receiver --node NAME`.

The worker bootstep (dms.worker.node_step.NodeStep) starts it and stops it with
the worker. It runs in its own process rather than as threads of the worker's
main process: prefork children are forked from that process, and forking a
process that runs threads is the classic deadlock class (decision 0023, F9).
The C++ receiver does the work on its own threads; this loop only logs what
it reports and dies with its parent (PR_SET_PDEATHSIG), so a SIGKILLed worker
never leaves an orphan holding the data port.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading

from dms import native
from dms.config import read_secrets
from dms.errors import DmsError
from dms.settings import active_config

__all__ = ["main"]

log = logging.getLogger("dms.worker.receiver")
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux: rely on the parent's stop
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        sys.exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dms.worker.receiver", description=__doc__)
    parser.add_argument("--node", required=True)
    parser.add_argument("--parent", type=int, default=os.getppid())
    parser.add_argument("--max-connections", type=int, default=64)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"[%(asctime)s: %(levelname)s/dms.worker.receiver {args.node}] %(message)s")  # fmt: skip
    _die_with_parent(args.parent)
    try:
        config = active_config()
        node = config.node(args.node)
        secret, previous = read_secrets(node, config.path)
        receiver = native.TcpReceiver(
            [(nic.address, node.port) for nic in node.data],
            list(node.roots),
            secret,
            previous_secret=previous,
            max_connections=args.max_connections,
            idle_timeout_ms=int(2 * config.defaults.data_timeout * 1000),  # a stalled sender gave up by then
        )
        receiver.start()
    except (DmsError, OSError, ValueError) as exc:
        log.error("cannot start the data receiver: %s", exc)
        print(f"FAILED {exc}", flush=True)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("READY " + " ".join(receiver.addresses), flush=True)
    try:
        while not stop.wait(0.2):
            _flush(receiver)
    finally:
        receiver.stop()
        _flush(receiver)
        log.info("stopped; %s", receiver.stats())
    return 0


def _flush(receiver: native.TcpReceiver) -> None:
    for level, message in receiver.events():
        log.log(level, "%s", message)


if __name__ == "__main__":
    sys.exit(main())
