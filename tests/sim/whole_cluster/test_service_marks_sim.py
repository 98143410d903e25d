"""Simulated tier: forced-down marks reach a node that was down when the operator
acted (issue 11 item 4): it asks its peers (SERVICE_MARKS, Op 81) when it joins."""

from __future__ import annotations

from tests.sim.whole_cluster.test_heal_sim import kill
from tests.sim.whole_cluster.test_replicas_sim import build_file_node, file_backed
from tests.support.harness import SimConfig


def forced_down_seen_by(c, index: int) -> set[str]:
    rows = c.api(index, "GET", "/services").json["services"]
    return {s["host"] for s in rows if s["forced_down"]}


def test_a_node_down_during_force_down_learns_the_mark_when_it_returns(seed, tmp_path):
    """Node 3 is dead while node 2 is forced down through node 0; when node 3
    restarts it shows node 2 forced down too, and so does it after the operator
    clears the mark and node 3 restarts once more."""
    c = file_backed(seed, tmp_path, SimConfig(nodes=4)).start()
    try:
        kill(c, 3)
        r = c.api(0, "PUT", "/services/force_down",
                  json={"host": "node-2", "binary": "zun-compute", "forced_down": True})
        assert r.status == 200 and r.json["service"]["forced_down"] is True
        c.nodes[3] = build_file_node(c, 3, tmp_path)
        c.run(c._start_node(c.nodes[3]))
        c.run_until(lambda: forced_down_seen_by(c, 3) == {"node-2"}, timeout_s=60,
                    step_s=0.5)
        assert all(forced_down_seen_by(c, i) == {"node-2"} for i in (0, 1, 3))
        kill(c, 3)
        r = c.api(1, "PUT", "/services/force_down",
                  json={"host": "node-2", "binary": "zun-compute", "forced_down": False})
        assert r.status == 200 and r.json["service"]["forced_down"] is False
        c.nodes[3] = build_file_node(c, 3, tmp_path)
        c.run(c._start_node(c.nodes[3]))
        c.run_until(lambda: not forced_down_seen_by(c, 3), timeout_s=60, step_s=0.5)
        c.advance(10.0)  # its exchanges must not bring the old mark back anywhere
        assert not any(forced_down_seen_by(c, i) for i in (0, 1, 3))
    finally:
        c.heal()
        c.stop()
