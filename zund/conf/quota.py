"""``[quota]`` options: per-project limits and the cluster ledger (zund/cluster/quota.py).

The four limits are Zun's defaults (``zun/conf/quota.py``); ``-1`` means unlimited.
They are what a project gets when neither an admin nor the ``default`` quota class
set another value.
"""

from oslo_config import cfg

GROUP = "quota"

quota_opts = [
    cfg.IntOpt("containers", default=40, min=-1,
               help="Containers per project (-1: unlimited)."),
    cfg.IntOpt("cpu", default=20, min=-1,
               help="Container vCPUs per project (-1: unlimited)."),
    cfg.IntOpt("memory", default=50 * 1024, min=-1,
               help="Container memory per project, in MiB (-1: unlimited)."),
    cfg.IntOpt("disk", default=100, min=-1,
               help="Container disk per project, in GiB (-1: unlimited)."),
    cfg.BoolOpt("enforce", default=True,
                help="Check creates against the project's quota. False: limits can "
                     "still be set and shown, nothing is refused."),
    cfg.FloatOpt("claim_ttl_s", default=30.0, min=1.0,
                 help="Seconds the ledger holder counts a granted claim that the entry "
                      "node neither committed nor released; then it checks whether the "
                      "container exists. Must exceed a whole placement (bid rounds + "
                      "the bidders' reservation TTL)."),
    cfg.IntOpt("limit_replicas", default=3, min=1,
               help="Limits set by an admin are written to this many nodes (the first "
                    "ones of the project's rendezvous order), each keeping them in its "
                    "store; a write needs a majority of them."),
    cfg.FloatOpt("rebuild_interval_s", default=300.0, min=1.0,
                 help="Seconds between recounts of a held project's usage from the real "
                      "records (repairs lost release messages)."),
    cfg.BoolOpt("leases", default=True,
                help="The ledger holder leases entry nodes blocks of a project's "
                     "headroom, so most creates claim locally with no round trip."),
    cfg.FloatOpt("lease_ttl_s", default=20.0, min=1.0,
                 help="Seconds the holder counts a lease; the node uses it for half "
                      "of that (must exceed a whole placement)."),
    cfg.IntOpt("lease_max_containers", default=8, min=1,
               help="Containers one lease holds at most."),
    cfg.FloatOpt("lease_return_delay_s", default=1.0, min=0.0,
                 help="Seconds a spent lease waits for a claim to the same holder to "
                      "carry it back before it is sent on its own."),
]


def register_opts(conf):
    conf.register_opts(quota_opts, group=GROUP)


def list_opts():
    return [(GROUP, quota_opts)]
