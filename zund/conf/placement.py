"""``[placement]`` options: the bid round (zund/cluster/placement.py, bidding.py, policies.py)."""

from oslo_config import cfg

GROUP = "placement"

placement_opts = [
    cfg.StrOpt("policy", default="spread",
               help="Placement policy: the name of an entry point in group "
                    "`zund.placement.policies`. Built in: `spread` (most free weighted "
                    "capacity first), `binpack` (least free first)."),
    cfg.StrOpt("tenant_isolation", default="off", choices=["off", "prefer", "strict"],
               help="`strict`: a node hosts containers of at most one project at a time. "
                    "`prefer`: nodes already hosting the project, then empty nodes, rank "
                    "first. `off`: projects share nodes freely."),
    cfg.FloatOpt("reservation_ttl_s", default=10.0, min=0.1,
                 help="Seconds a bidder holds capacity for a bid that was not committed "
                      "or released; an expired reservation can no longer be committed."),
    cfg.FloatOpt("probe_ratio", default=2.0, min=1.0,
                 help="The entry node asks ceil(probe_ratio * k) sampled candidates for "
                      "bids (k = containers placed by the request, 1 for a create)."),
    cfg.IntOpt("probe_all_below", default=2, min=0,
               help="When at most this many nodes are candidates, ask all of them. "
                    "Above it, ceil(probe_ratio * k) sampled candidates are asked (the "
                    "power of d = 2 choices: decision quality within a few percent of "
                    "asking everyone, at a fraction of the RPCs); a round whose bids all "
                    "fail asks twice as many others."),
    cfg.FloatOpt("bid_timeout_s", default=2.0, min=0.01,
                 help="Seconds to wait for one bid; a bidder that does not answer in "
                      "time counts as a decline."),
    cfg.IntOpt("max_rounds", default=2, min=1,
               help="Bid rounds before a create fails with NoValidHost; each later round "
                    "asks twice as many nodes that were not asked before."),
    cfg.FloatOpt("busy_wait_s", default=2.0, min=0.0, max=60.0,
                 help="After max_rounds, how long a create keeps asking again (after a "
                      "pause of 0.05 s doubling to 0.5 s) while some node declined only "
                      "because reservations of placements in flight held it (a losing "
                      "bid not yet released, a concurrent create not yet committed), "
                      "before it fails with NoValidHost. 0: fail at once."),
    cfg.FloatOpt("commit_resolve_s", default=20.0, min=0.5,
                 help="Seconds the entry node keeps asking a winner whose COMMIT answer "
                      "was lost whether it holds the container (COMMIT_STATUS) before "
                      "the create fails with 503. It never falls back to another bid "
                      "while the outcome is unknown (that could make a twin)."),
    cfg.BoolOpt("fast_path", default=True,
                help="One-shot placement: the entry node sends one BID_COMMIT to the best "
                     "of the sampled candidates by their gossiped metadata; that node bids "
                     "against its own truth and, if it would bid, commits at once (one "
                     "peer RPC instead of a bid round, a commit and releases). A decline "
                     "falls back to the bid round. False: every create runs the full bid "
                     "round."),
    cfg.FloatOpt("fast_path_slack", default=0.05, min=0.0,
                 help="The fast path's pick declines ('outbid', then the bid round) when "
                      "its own score is below the next sampled candidate's score, as the "
                      "entry node sees it, minus this: a guard against a stale view "
                      "(rarely fires with metadata_min_interval 0.1). 1000: no bar."),
    cfg.FloatOpt("fast_path_fresh_s", default=1.0, min=0.0,
                 help="Seconds the load a BID_COMMIT answer carries (the node's truth) "
                      "overrides that node's gossip metadata in this entry node's "
                      "fast-path ranking, until newer metadata arrives. 0: metadata only."),
]


def register_opts(conf):
    conf.register_opts(placement_opts, group=GROUP)


def list_opts():
    return [(GROUP, placement_opts)]
