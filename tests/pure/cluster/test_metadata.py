"""Pure tier: the gossip metadata value — built, encoded within its bound, decoded
once into a typed ``NodeMeta``; hostile blobs decode to None, never raise."""

from __future__ import annotations

import msgpack
import pytest

from zund.cluster import metadata, policies
from zund.cluster.metadata import LocalNode, NodeFacts, NodeMeta
from zund.cluster.policies import NodeState
from zund.cluster.types import PlacementRequest
from zund.compute.capacity import Held, HostFacts, Usage

LIMITS = {"cpus": 8.0, "mem_mb": 8192, "disk_gb": 100}
HOST = HostFacts(cpus=8, mem_total_mb=8192, disk_total_gb=100, architecture="x86_64",
                 os="Linux", kernel_version="6.1")


def built(tenants=None, **facts) -> NodeMeta:
    return metadata.build(NodeFacts(**{"runtimes": ["runc"], **facts}), Usage(1.5, 512, 2, 3),
                          LIMITS, tenants or {"p1": 2, "p2": 1}, host=HOST)


def test_a_blob_decodes_to_the_value_it_was_built_from():
    """build -> encode -> decode is the identity on NodeMeta."""
    meta = built(az="az1", labels={"gpu": "1"}, api="10.0.0.1:9517", peer="10.0.0.1:9518")
    assert metadata.decode(metadata.encode(meta)) == meta
    assert meta.cap.cpus - meta.cap.cpu_used == 6.5 and meta.hardware.kernel == "6.1"


def test_what_warm_guests_would_give_up_travels_and_a_node_can_take_it():
    """The booted warm guests' 0.5 cpu and 1,024 MiB (already in ``*_used``) reach
    the peers, which filter with them: a request that fits only without the
    guests fits; an older node's blob without the fields gives up nothing."""
    meta = metadata.build(NodeFacts(runtimes=["microvm"]), Usage(1.5 + 6.0, 7680, 2, 3),
                          LIMITS, {"p1": 3}, host=HOST,
                          yieldable=Held(cpus=0.5, mem_mb=1024, count=1))
    got = metadata.decode(metadata.encode(meta))
    assert (got.cap.yield_cpu, got.cap.yield_mem_mb) == (0.5, 1024)
    state = NodeState.from_meta("n1", got)
    request = PlacementRequest(request_id="r", uuid="u", project_id="p1", user_id="u",
                               cpu=0.5, memory_mb=1536, runtime="microvm")
    assert state.mem_free_mb == 512 and policies.fits(request, state) is None
    wire = got.to_wire()
    del wire["cap"]["yield_cpu"], wire["cap"]["yield_mem_mb"]
    older = metadata.decode(msgpack.packb(wire, use_bin_type=True))
    assert policies.fits(request, NodeState.from_meta("n1", older)).startswith("memory:")


def test_a_large_tenant_table_is_cut_to_fit_and_says_so():
    """500 projects still fit in MAX_META_BYTES; the count and the flag survive."""
    tenants = {f"project-{i:04d}": 1 for i in range(500)}
    blob = metadata.encode(built(tenants=tenants))
    meta = metadata.decode(blob)
    assert len(blob) <= metadata.MAX_META_BYTES
    assert meta.tenants_truncated and meta.ntenants == 500 and len(meta.tenants) <= 16


def test_a_node_that_sent_no_host_block_shows_its_schedulable_totals():
    """An older node without ``host``: /v1/hosts falls back to ``cap``."""
    wire = built().to_wire()
    wire["host"] = {}
    meta = metadata.decode(msgpack.packb(wire, use_bin_type=True))
    assert meta.host is None and (meta.hardware.cpus, meta.hardware.mem_mb) == (8, 8192)


def _packed(**changes) -> bytes:
    wire = built().to_wire()
    wire.update(changes)
    return msgpack.packb(wire, use_bin_type=True)


@pytest.mark.parametrize("blob", [
    b"", b"\xc1", msgpack.packb([1, 2]), _packed(v=2), _packed(cap={"cpus": "many"}),
    _packed(cap={"cpus": float("nan")}), _packed(runtimes="runc"), _packed(labels={"a": 1}),
    _packed(tenants={"p": "x"}), _packed(az=5), _packed(cap=[1, 2]),
    msgpack.packb({"v": 1, "labels": {str(i): "x" * 8 for i in range(300)}}),
])
def test_hostile_or_foreign_blobs_decode_to_none(blob):
    """Not ours, a newer schema, or a wrong shape: None (the node counts as
    metadata-less), never an exception."""
    assert metadata.decode(blob) is None


def test_local_node_notifies_only_on_a_real_change():
    """Listeners hear each change of the facts once, and nothing for a no-op."""
    local = LocalNode(NodeFacts(runtimes=["runc"]))
    heard = []
    local.listeners.append(heard.append)
    local.set_addresses(api="h:1", peer="h:2")
    local.set_addresses(api="h:1")
    local.set_draining(True)
    assert [(f.api, f.peer, f.draining) for f in heard] == [("h:1", "h:2", False),
                                                           ("h:1", "h:2", True)]
    assert local.facts.runtimes == ("runc",)
