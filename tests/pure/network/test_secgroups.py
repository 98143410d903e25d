"""Pure tier, issue 16: who may open connections to a port (zund.network.secgroups)."""

from __future__ import annotations

import pytest

from zund.network.secgroups import (PortRules, effective_groups, exposed_pairs,
                                    port_rules)


def _m(port, ip, groups, project="p"):
    return {"port": port, "ip": ip, "project": project, "groups": list(groups), "node": "n"}


@pytest.mark.parametrize("groups, exposed, expected", [
    ((), None, ("default",)),
    (["web", "web", "db"], None, ("db", "web")),
    ((), {"80/tcp": {}}, ()),
    (["web"], {"80/tcp": {}}, ("web",)),
])
def test_a_port_without_groups_is_in_default_unless_it_exposes_ports(groups, exposed,
                                                                     expected):
    """Zun: no group named -> default; exposed ports -> a group of its own (none shared)."""
    assert effective_groups(groups, exposed) == expected


def test_exposed_ports_are_normalised_with_tcp_by_default():
    """"80", "53/udp" and "443/TCP" become sorted (port, proto) pairs."""
    assert exposed_pairs({"80": {}, "53/udp": {}, "443/TCP": {}}) == (
        (53, "udp"), (80, "tcp"), (443, "tcp"))


def test_members_sharing_a_group_are_admitted_and_others_are_not():
    """Sources: every other member with a common group of the same project, sorted."""
    me = _m("a", "10.0.0.2", ["web", "db"])
    members = [me, _m("b", "10.0.0.10", ["web"]), _m("c", "10.0.0.9", ["db", "x"]),
               _m("d", "10.0.0.4", ["default"]), _m("e", "10.0.0.5", ["web"], project="q"),
               _m("f", "10.0.0.6", [])]
    assert port_rules(me, {"8080/tcp": {}}, members) == PortRules(
        ip="10.0.0.2", exposed=((8080, "tcp"),), sources=("10.0.0.9", "10.0.0.10"))


def test_a_port_in_no_group_admits_only_its_exposed_ports():
    """An exposing port (groups []) lets no member in on other ports."""
    me = _m("a", "10.0.0.2", [])
    rules = port_rules(me, {"80/tcp": {}}, [me, _m("b", "10.0.0.3", ["default"]),
                                            _m("c", "10.0.0.4", [])])
    assert rules.sources == () and rules.exposed == ((80, "tcp"),)


def test_malformed_member_copies_admit_nobody():
    """A peer's copy without a list of groups or an address is skipped."""
    me = _m("a", "10.0.0.2", ["default"])
    bad = [{"port": "b", "ip": "10.0.0.3", "project": "p", "groups": "default"},
           {"port": "c", "ip": None, "project": "p", "groups": ["default"]}]
    assert port_rules(me, None, [me, *bad]).sources == ()
