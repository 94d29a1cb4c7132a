"""The quick check (and --checksum) across clusters, asked of a destination receiver.

The planner's side cannot see the destination file system, so walkers send
batches of (final path, size, mtime, mode[, digest of the source's content])
to one live receiver of the destination cluster (QUERY frame, docs/protocol.md)
and skip what it reports as up to date. Any failure (no live receiver, a
connection that breaks) means "not up to date": the file is sent, never lost.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Sequence

from dms import native
from dms.config import read_secrets, with_secrets
from dms.errors import DmsError
from dms.model import FileRecord, SyncParams
from dms.settings import active_config, current_node
from dms.state.nodes import Registry, endpoints_of
from dms.state.requests import RequestStore

__all__ = ["remote_up_to_date"]

log = logging.getLogger(__name__)


def remote_up_to_date(store: RequestStore, params: SyncParams, files: Sequence[FileRecord]) -> list[bool]:
    no = [False] * len(files)
    me = current_node()
    if me is None or not files or params.destination_cluster is None:
        return no
    registry = Registry.sharing(store)
    dests = endpoints_of(registry.live_nodes(), params.destination_cluster, receivers_only=True)
    if not dests:
        log.warning("request %s: no live receiver in cluster %s to check against: every file is sent",
                    params.request_id, params.destination_cluster)  # fmt: skip
        return no
    dst = dests[zlib.crc32(params.request_id.encode()) % len(dests)]
    src = next((n for n in me.data if not n.network or not dst.network or n.network == dst.network), me.data[0])
    entries = []
    for f in files:
        digest = None
        if params.checksum:  # the source's side of rsync -c: its own copy, hashed here
            try:
                digest = native.hash_range(os.path.join(params.source, f.relpath), 0, f.size)
            except OSError:
                digest = "0" * 32
        entries.append((os.path.join(params.destination, f.relpath), f.size, f.mtime_ns, f.mode, digest))
    try:
        return with_secrets(read_secrets(me, active_config().path), lambda secret: native.query_up_to_date(
            entries, src.address, dst.address, dst.port, secret, params.checksum))  # fmt: skip
    except (OSError, DmsError) as exc:
        log.warning("request %s: quick check at %s failed (%s): the files are sent", params.request_id, dst.key, exc)
        return no
