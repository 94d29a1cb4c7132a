"""Which paths a cross-cluster request may name: its clusters' allowed roots, checked lexically.

Apart from dms.route.placement on purpose: the submitting client checks the roots too, and
placement loads the NIC registry and redis-py, imports a client has no use for.
"""

from __future__ import annotations

from collections.abc import Collection

from dms.config import DmsConfig, NodeConfig
from dms.errors import ConfinementError
from dms.fs.paths import is_normal_absolute, is_within
from dms.model import SyncParams

__all__ = ["check_roots", "under_roots"]


def under_roots(path: str, roots: Collection[str]) -> bool:
    """Whether `path` (absolute, normalized) is one of `roots` or lies below one."""
    return any(is_within(path, r) for r in roots)


def check_roots(config: DmsConfig, params: SyncParams) -> None:
    """Refuse a request whose source or destination lies outside its cluster's allowed roots.

    Lexical here (the submitting host may see neither path); the receiver checks
    every write again below the real directory tree, symlinks included.
    """
    if not params.clustered:
        return
    assert params.source_cluster is not None and params.destination_cluster is not None
    for label, path, cluster in (
        ("source", params.source, params.source_cluster),
        ("destination", params.destination, params.destination_cluster),
    ):
        nodes: tuple[NodeConfig, ...] = config.cluster(cluster).nodes
        roots = sorted({r for n in nodes for r in n.roots})
        if not is_normal_absolute(path) or not under_roots(path, roots):
            raise ConfinementError(
                f"{label} {path} is outside the allowed roots of cluster {cluster} ({', '.join(roots)})"
            )
