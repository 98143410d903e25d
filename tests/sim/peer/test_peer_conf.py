"""[peer] options and the signer/verifier built from [gossip] keys."""

import base64

from oslo_config import cfg
from twisted.internet import task

from zund.cluster import signing
from zund.conf import gossip, peer


def make_conf(keys=()):
    conf = cfg.ConfigOpts()
    gossip.register_opts(conf)
    peer.register_opts(conf)
    conf([], default_config_files=[])
    if keys:
        conf.set_override("keys", list(keys), group="gossip")
    return conf


def test_defaults():
    pc = peer.peer_config(make_conf())
    assert (pc.host_ip, pc.port, pc.timeout_s, pc.max_body_bytes, pc.clock_skew_s) == \
        ("0.0.0.0", 9518, 5.0, 1024 * 1024, 30.0)
    assert pc.gossip_keys == () and pc.cluster_name == "zund"
    assert peer.list_opts()[0][0] == "peer"


def test_two_nodes_built_from_the_same_conf_talk():
    """Signer of one node, verifier of another, both from [gossip] keys."""
    key = base64.b64encode(b"q" * 32).decode()
    pc = peer.peer_config(make_conf([key]))
    ring = signing.peer_keys(pc.gossip_keys, pc.cluster_name)
    assert ring.secure
    clock = task.Clock()
    signer = signing.Signer("a", ring.keys, clock)
    verifier = signing.Verifier("b", ring.keys, clock, skew_s=pc.clock_skew_s)
    headers = signer.headers("POST", "/v1/peer/host", b"\x80", "b")
    assert verifier.verify("POST", "/v1/peer/host", b"\x80", headers) == "a"
