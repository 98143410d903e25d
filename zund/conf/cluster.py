"""``[cluster]`` options: what the nodes keep for one another (record replicas)."""

from __future__ import annotations

import attrs
from oslo_config import cfg

GROUP = "cluster"

cluster_opts = [
    cfg.IntOpt("replicas", default=2, min=0,
               help="How many other nodes keep a copy of each of this node's container "
                    "records (chosen by rendezvous hashing over the live members), so any "
                    "node can show them as Unknown while this node is down. 0 disables."),
    cfg.FloatOpt("replica_anti_entropy_interval_s", default=30.0, min=1.0,
                 help="Seconds between repair passes that re-send copies the holders lack "
                      "(also run at once when the live membership changes)."),
    cfg.IntOpt("replica_queue_limit", default=1000, min=10,
               help="Record changes queued per peer before new ones are dropped (and "
                    "repaired by the next anti-entropy pass)."),
]


@attrs.frozen
class ReplicaConfig:
    replicas: int = 2
    anti_entropy_interval_s: float = 30.0
    queue_limit: int = 1000


def replica_config(conf) -> ReplicaConfig:
    group = conf[GROUP]
    return ReplicaConfig(replicas=group.replicas,
                         anti_entropy_interval_s=group.replica_anti_entropy_interval_s,
                         queue_limit=group.replica_queue_limit)


def register_opts(conf):
    conf.register_opts(cluster_opts, group=GROUP)


def list_opts():
    return [(GROUP, cluster_opts)]
