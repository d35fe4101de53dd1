"""A real, small Ray cluster for tests: a head and a second node on this machine, and ways to hurt it.

Ray's ``cluster_utils.Cluster`` runs each node as its own raylet (separate
processes, object stores and resources), so work really is spread and a
worker really dies. Never ``ray stop`` here: it kills every Ray process on
the machine, other people's included; ``Cluster.shutdown()`` stops only
what this one started.
"""

from __future__ import annotations

import os
import signal
from typing import Any

OBJECT_STORE = 512 << 20  # bytes per node: plenty for a few small videos' results
NODE_CPUS = 1  # logical CPUs per node; actors ask for a fraction above half, so one lands on each node


def start_cluster(nodes: int = 2, cpus: int = NODE_CPUS) -> Any:
    """A head plus ``nodes - 1`` workers, each with ``cpus`` logical CPUs; the caller shuts it down."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # Ray 2.60+ asks for a token by default
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from ray.cluster_utils import Cluster

    args = {"num_cpus": cpus, "object_store_memory": OBJECT_STORE, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=args)
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=cpus, object_store_memory=OBJECT_STORE)
    cluster.wait_for_nodes()
    return cluster


def perception_actors() -> list[Any]:
    """Handles of the perception actors of the runs in progress (the driver must be connected)."""
    import ray

    from vdisc.index.ray_index import ACTOR_NAME

    return [ray.get_actor(a["name"], namespace=a["namespace"])
            for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(ACTOR_NAME)]


def kill_busy_actor(video: str = "", spare: set[int] = frozenset()) -> dict[str, Any] | None:
    """SIGKILL the process of an actor perceiving a video now (one whose path ends with ``video``, not
    one of the ``spare`` pids): its status (pid, path), or None if none is."""
    import ray

    for actor in perception_actors():
        try:
            status = ray.get(actor.status.remote(), timeout=30)
        except ray.exceptions.RayError:  # restarting or gone: not the one to kill
            continue
        if status["path"] and status["path"].endswith(video) and status["pid"] not in spare:
            os.kill(status["pid"], signal.SIGKILL)
            return status
    return None
