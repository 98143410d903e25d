"""Volumes across a simulated cluster: a project's named volume stays on the node
that made it, and the project's next container mounting it is placed there (the
bidders that hold it rank first), whatever node the create enters through; a
rebuild through another node keeps uuid, name and data."""

from __future__ import annotations

import urllib.parse

from tests.support.harness import SimConfig

MEMBER = "alice:projv"


def sh(c, which, uuid, script) -> str:
    quoted = urllib.parse.quote(f'"sh" "-c" "{script}"')
    r = c.api(which, "POST", f"/containers/{uuid}/execute?command={quoted}", token=MEMBER)
    assert r.status == 200, (r.status, r.body)
    return r.json["output"]


def host_of(c, which, uuid) -> str:
    """The node whose engine runs the container (``host`` is an admin-only field)."""
    held = [n.name for n in c.nodes if f"zun-{uuid}" in n.runtime.containers]
    assert len(held) == 1, held
    return held[0]


def test_the_next_container_mounting_a_named_volume_lands_where_it_is(make_cluster):
    """Made via node 0 somewhere; deleted; re-created via every other node: always
    on the node holding the volume, with the data."""
    c = make_cluster(SimConfig(nodes=4))
    mount = [{"source": "data1", "destination": "/data", "size": "1"}]
    first = c.create(0, token=MEMBER, mounts=mount, memory=32, cpu=0.1)
    c.wait_status(0, first["uuid"], "Running", token=MEMBER)
    home = host_of(c, 0, first["uuid"])
    sh(c, 0, first["uuid"], "echo kept > /data/f")
    assert c.api(1, "DELETE", f"/containers/{first['uuid']}?stop=true",
                 token=MEMBER).status == 204
    for entry in (1, 2, 3):
        made = c.create(entry, token=MEMBER, mounts=mount, memory=32, cpu=0.1)
        c.wait_status(entry, made["uuid"], "Running", token=MEMBER)
        assert host_of(c, entry, made["uuid"]) == home, entry
        assert sh(c, entry, made["uuid"], "cat /data/f") == "kept\n"


def test_rebuild_through_another_node_keeps_identity_and_data(make_cluster):
    """`rebuild` entered on a node that does not hold the container: same uuid,
    name and host, Running again, the volume's data kept."""
    c = make_cluster(SimConfig(nodes=3))
    made = c.create(0, token=MEMBER, name="web", memory=32, cpu=0.1,
                    mounts=[{"source": "d", "destination": "/d"}])
    c.wait_status(0, made["uuid"], "Running", token=MEMBER)
    home = host_of(c, 0, made["uuid"])
    sh(c, 0, made["uuid"], "echo v1 > /d/f")
    entry = next(i for i, n in enumerate(c.nodes) if n.name != home)
    assert c.api(entry, "POST", "/containers/web/rebuild", token=MEMBER).status == 202
    c.run_until(lambda: c.api(entry, "GET", "/containers/web", token=MEMBER)
                .json["task_state"] is None)
    shown = c.wait_status(entry, made["uuid"], "Running", token=MEMBER)
    assert shown["name"] == "web" and host_of(c, entry, made["uuid"]) == home
    assert sh(c, entry, made["uuid"], "cat /d/f") == "v1\n"
