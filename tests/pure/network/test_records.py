"""Pure tier, issue 16: the vxlan backend's replicated values and address
arithmetic (zund.network.records)."""

from __future__ import annotations

import pytest

from zund.network import records as R


def test_blocks_skip_network_broadcast_and_gateway():
    """Block 0 of a /24 starts after the network address; the last block ends
    before the broadcast; a gateway is never handed out."""
    assert R.block_addresses("10.90.1.0/24", 16, 0)[0] == "10.90.1.1"
    assert R.block_addresses("10.90.1.0/24", 16, 15)[-1] == "10.90.1.254"
    assert "10.90.1.1" not in R.block_addresses("10.90.1.0/24", 16, 0, "10.90.1.1")
    assert R.block_count("10.90.1.0/24", 16) == 16
    assert R.block_of("10.90.1.0/24", 16, "10.90.1.33") == 2


@pytest.mark.parametrize("cidr", ["10.1.2.3/24", "fd00::/64", "10.0.0.0/30", "x"])
def test_bad_subnets_are_refused(cidr):
    """Host bits set, IPv6, too small or not a subnet: ValueError."""
    with pytest.raises(ValueError):
        R.parse_cidr(cidr)


def test_mac_is_derived_from_the_address_and_locally_administered():
    """Same address, same MAC (restarts keep it); the local bit is set."""
    assert R.mac_for("10.90.1.2") == "02:5a:0a:5a:01:02"
    assert int(R.mac_for("10.90.1.2").split(":")[0], 16) & 0x02


def test_vni_moves_past_taken_ones_and_stays_in_24_bits():
    """A VNI already used by another network is never given again."""
    first = R.vni_for("net-1", set())
    assert 1 <= first <= R.VNI_MAX
    assert R.vni_for("net-1", {first}) != first


def test_free_subnet_skips_overlapping_ones():
    """Auto cidr: the first /24 of the pool that overlaps no network."""
    assert R.free_subnet("10.96.0.0/23", ["10.96.0.0/24"]) == "10.96.1.0/24"
    assert R.free_subnet("10.96.0.0/24", ["10.96.0.0/16"]) is None


def test_item_round_trips_and_refuses_malformed_copies():
    """A NetItem survives the wire; a peer's malformed copy is a ValueError."""
    item = R.NetItem("block:n:1", "n", {"index": 1, "node": "a", "vtep": "10.0.0.1"},
                     (12.5, "a"))
    assert R.NetItem.from_wire(item.to_wire()) == item
    for bad in ({}, {"key": "k", "group": "g", "data": [], "version": [1, "a"]},
                {"key": "k", "group": "g", "data": {}, "version": [True, "a"]}):
        with pytest.raises(ValueError):
            R.NetItem.from_wire(bad)
