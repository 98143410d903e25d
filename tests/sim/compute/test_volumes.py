"""Volumes as values and ranks (no I/O): a record's mounts become runtime mounts and
engine volumes by fixed rules, and a bidder holding a project's named volume
outranks every node that does not."""

from __future__ import annotations

import base64

from twisted.internet import defer, task

from zund.cluster import policies
from zund.cluster.bidding import Bidder
from zund.cluster.metadata import NodeFacts
from zund.cluster.types import PlacementRequest
from zund.compute.volumes import mounts_of, named_volumes, volume_name, volumes_of
from zund.records import ContainerRecord
from zund.runtimes.base import Mount

MOUNTS = [
    {"type": "volume", "source": "data1", "destination": "/data", "size": 1},
    {"type": "volume", "source": None, "destination": "/scratch", "size": 2},
    {"type": "bind", "destination": "/etc/app.conf",
     "content": base64.b64encode(b"x=1\n").decode()},
    {"type": "bind", "source": "/srv/host", "destination": "/host", "host_path": True},
]


def rec(project="p1", uuid="0b7c3a52-1d5e-4f6a-9b8c-7d6e5f4a3b2c") -> ContainerRecord:
    return ContainerRecord(uuid=uuid, project_id=project, user_id="u", image="i",
                           host="n1", mounts=[dict(m) for m in MOUNTS])


def test_mounts_become_runtime_mounts_in_request_order():
    """Named and size-only volumes, an injected file and a host bind, in order."""
    r = rec()
    assert mounts_of(r) == (
        Mount("volume", "/data", volume_name("p1", "data1")),
        Mount("volume", "/scratch", f"zund-{r.uuid}-1"),
        Mount("file", "/etc/app.conf", content=b"x=1\n"),
        Mount("bind", "/host", "/srv/host"),
    )


def test_only_size_only_volumes_go_away_with_the_container():
    """Zun's rule: a volume the create made from a size is removed with it; a named
    one is kept for the project's next container."""
    made = {name: auto for name, _labels, auto in volumes_of(rec())}
    assert made == {volume_name("p1", "data1"): False,
                    f"zund-{rec().uuid}-1": True}


def test_two_projects_never_share_a_volume_name():
    """The engine name is derived from the project: the same user name maps to
    different volumes, so another project's volume cannot be named."""
    assert volume_name("p1", "data1") != volume_name("p2", "data1")
    assert named_volumes(MOUNTS) == ["data1"]


def test_a_bidder_holding_the_volume_outranks_an_emptier_node():
    """The volume bonus dominates the policy score and the tenant tier."""
    def bidder(name, held):
        async def view():
            return []

        async def volumes_view(project, names):
            return [n for n in names if n in held]

        return Bidder(name, {"cpus": 8.0, "mem_mb": 8192, "disk_gb": 10}, view, task.Clock(),
                      10.0, policies.load_policy("spread"), "prefer",
                      NodeFacts(az="nova", runtimes=["runc"]), volumes_view=volumes_view)

    preq = PlacementRequest(request_id="r", uuid="u1", project_id="p1", user_id="u",
                            cpu=1.0, memory_mb=256, volumes=("data1",))
    holder = defer.ensureDeferred(bidder("a", {"data1"}).bid(preq)).result
    other = defer.ensureDeferred(bidder("b", set()).bid(preq)).result
    assert holder.score > other.score + policies.TIER_WIDTH
    assert int(holder.score % policies.VOLUME_WIDTH // policies.TIER_WIDTH) == \
        int(other.score // policies.TIER_WIDTH)
