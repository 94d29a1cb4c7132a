"""Route transfer units of cross-cluster requests onto (source NIC, destination NIC) paths.

The scheduler policy chooses; this module gathers what it chooses from (live
nodes' NICs, paired by rail, minus endpoints known to be failing), records
the choice in Redis (so the transfer task, and anyone inspecting the request,
can read it) and keeps the per-NIC bytes-in-flight account current.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from dms.config import DmsConfig
from dms.errors import TransientError
from dms.model import SyncParams
from dms.route.policies import UnitToRoute, candidate_paths, get_policy
from dms.state.nodes import NicEndpoint, Registry, endpoints_of

__all__ = ["NoRoute", "Placement", "Route"]


class NoRoute(TransientError):
    """No live node can carry this unit now (none alive in a cluster, or no receiver)."""


@dataclass(frozen=True)
class Route:
    source: NicEndpoint
    destination: NicEndpoint | None  # None: the source node writes the destination itself (local copier)


class Placement:
    def __init__(self, registry: Registry, config: DmsConfig) -> None:
        self.registry = registry
        self.config = config

    def route(
        self,
        params: SyncParams,
        index: int,
        nbytes: int,
        *,
        exclude: Collection[str] = (),
        source_node: str | None = None,
    ) -> Route:
        """Choose and record the path of unit `index`.

        exclude: destination endpoint keys ("node/iface") that just failed.
        source_node: keep the unit on this node (it is already running there).
        """
        assert params.source_cluster is not None and params.destination_cluster is not None
        nodes = self.registry.live_nodes()
        sources = endpoints_of(nodes, params.source_cluster)
        if source_node is not None:
            sources = [e for e in sources if e.node == source_node]
        same_cluster = params.source_cluster == params.destination_cluster
        if same_cluster:  # one shared file system: the source node copies locally
            paths = [(s, s) for s in sources]
        else:
            dests = [
                e for e in endpoints_of(nodes, params.destination_cluster, receivers_only=True) if e.key not in exclude
            ]
            if not dests and exclude:  # every destination failed once: try them all again
                dests = endpoints_of(nodes, params.destination_cluster, receivers_only=True)
            paths = candidate_paths(sources, dests)
            down = self.registry.paths_down()
            healthy = [(s, d) for s, d in paths if (s.key, d.key) not in down]
            paths = healthy or paths  # every path failed lately: try them all again
        if not paths:
            where = f"node {source_node}" if source_node else f"cluster {params.source_cluster}"
            raise NoRoute(
                f"no path from {where} to cluster {params.destination_cluster}: no live worker with a data NIC "
                "(and a running receiver, on the destination side) has a current heartbeat"
            )
        policy = get_policy(params.scheduler or self.config.defaults.scheduler)
        src, dst = policy.choose(UnitToRoute(params.request_id, index, nbytes), paths, self.registry.nic_load())
        local = same_cluster or src.node == dst.node
        self.registry.assign(params.request_id, index, src.key, "" if local else dst.key, nbytes)
        return Route(src, None if local else dst)
