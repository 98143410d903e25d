"""Metrics and the event journal on a whole simulated cluster (issue 14).

Every node keeps its own Prometheus registry (several nodes share this process)
and its own journal; both move as the cluster acts.
"""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families

from tests.support.harness import SimConfig


def scrape(node) -> dict:
    """(name, labels) -> value, parsed with prometheus_client's text parser."""
    body, _ = node.parts.metrics.render()
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_api_requests_placements_bids_and_containers(make_cluster):
    """A create through node 0 landing on another node moves node 0's API and
    placement counters and the owner's container gauge; gossip members show alive."""
    c = make_cluster(SimConfig(nodes=3, per_node={0: {"memory_mb": 100}}))
    before = scrape(c.node(0))
    made = c.create(0, name="web", memory=128)
    owner = c.node(made["host"])
    c.wait_status(0, made["uuid"], "Running")
    entry = scrape(c.node(0))
    assert value(entry, "zund_api_requests_total", route="container_create", method="POST",
                 status="202") == value(before, "zund_api_requests_total",
                                        route="container_create", method="POST",
                                        status="202") + 1
    assert value(entry, "zund_api_request_duration_seconds_count",
                 route="container_create") >= 1
    assert value(entry, "zund_placements_total", outcome="placed") == 1
    assert value(entry, "zund_placement_duration_seconds_count", outcome="placed") == 1
    # the one create tried the fast path once (accepted, or declined into a bid round)
    assert sum(value(entry, "zund_placement_fast_path_total", outcome=o)
               for o in ("accepted", "declined", "failed")) == 1
    assert value(entry, "zund_gossip_members", state="alive") == 3
    held = scrape(owner)
    assert value(held, "zund_containers", status="Running", runtime="runc") == 1
    assert value(held, "zund_bidder_requests_total", outcome="committed") == 1
    assert (value(entry, "zund_peer_rpc_duration_seconds_count", op="commit")
            + value(entry, "zund_peer_rpc_duration_seconds_count", op="bid_commit")) >= 1
    for call in ("create", "start"):
        assert value(held, "zund_runtime_call_seconds_count", runtime="runc", call=call) >= 1
        assert value(entry, "zund_runtime_call_seconds_count", runtime="runc", call=call) == \
            value(before, "zund_runtime_call_seconds_count", runtime="runc", call=call)


def test_the_journal_shows_a_create_placed_through_another_node(make_cluster):
    """The owner's journal says it won the bid and started the container; the
    entry's says where it placed it; a stop asked by a user is 'stopped'."""
    c = make_cluster(SimConfig(nodes=3, per_node={0: {"memory_mb": 100}}))
    made = c.create(0, name="web", memory=128)
    c.wait_status(0, made["uuid"], "Running")
    owner = c.node(made["host"])
    kinds = [(e.kind, e.fields.get("container")) for e in owner.parts.journal.since(0)]
    assert ("won_bid", made["uuid"]) in kinds and ("started", made["uuid"]) in kinds
    placed = [e for e in c.node(0).parts.journal.since(0) if e.kind == "placed"]
    assert placed and placed[-1].fields["winner"] == made["host"]
    assert c.api(1, "POST", f"/containers/{made['uuid']}/stop").status == 202
    c.wait_status(0, made["uuid"], "Stopped")
    last = [e.kind for e in owner.parts.journal.since(0)
            if e.fields.get("container") == made["uuid"]]
    assert last[-1] == "stopped"


def test_the_journal_sees_a_member_die_and_counts_suspicions(make_cluster):
    """A crashed node becomes suspect then dead in the others' journals and metrics;
    probes are acked while it lives, then time out and go indirect."""
    c = make_cluster(SimConfig(nodes=3))
    dead = c.node(2).name
    c.run_until(lambda: value(scrape(c.node(0)), "zund_gossip_probes_total",
                              result="ack") >= 1, timeout_s=30)
    healthy = scrape(c.node(0))
    assert value(healthy, "zund_gossip_probes_sent_total") >= 1
    c.crash(2)
    journal = c.node(0).parts.journal
    c.run_until(lambda: any(e.kind == "member_dead" and e.fields["member"] == dead
                            for e in journal.since(0)), timeout_s=120)
    assert any(e.kind == "member_suspect" for e in journal.since(0))
    samples = scrape(c.node(0))
    assert value(samples, "zund_gossip_member_events_total", kind="suspect") >= 1
    assert value(samples, "zund_gossip_members", state="dead") == 1
    assert value(samples, "zund_gossip_probes_total", result="timeout") > \
        value(healthy, "zund_gossip_probes_total", result="timeout")
    assert value(samples, "zund_gossip_indirect_probes_sent_total") > \
        value(healthy, "zund_gossip_indirect_probes_sent_total")
    assert value(samples, "zund_gossip_probes_sent_total") > \
        value(healthy, "zund_gossip_probes_sent_total")


def test_the_control_socket_follows_new_events_with_a_long_poll(make_cluster):
    """GET /events?since=N&wait=S on the control API is held until the next event."""
    from treq.testing import StubTreq

    c = make_cluster(SimConfig(nodes=2))
    node = c.node(0)
    client = StubTreq(node.parts.control.resource())
    last = node.parts.journal.last_seq
    d = client.get(f"http://control/events?since={last}&wait=20")
    out = []
    d.addCallback(lambda r: r.content()).addCallback(out.append)
    c.advance(1.0)
    client.flush()
    assert not out  # nothing new yet: held
    node.parts.journal.record("healed", member="node-9")
    client.flush()
    c.advance(0.1)
    client.flush()
    assert out, "the held request was not answered"
    body = json.loads(out[0])
    assert [e["kind"] for e in body["events"]] == ["healed"]
    assert body["last_seq"] == last + 1


def test_interactive_exec_on_a_runtime_without_console_is_a_clear_409(make_cluster):
    """A runtime that cannot give a TTY (here the fake; the micro-VM too) answers
    409 naming the runtime, through any node."""
    c = make_cluster(SimConfig(nodes=2))
    made = c.create(0, name="web")
    c.wait_status(0, made["uuid"], "Running")
    other = 1 if made["host"] == c.node(0).name else 0
    r = c.api(other, "POST", f"/containers/{made['uuid']}/execute?command=sh"
                             "&interactive=true&run=false")
    assert r.status == 409 and "not supported by runtime" in r.json["errors"][0]["detail"]
    r = c.api(other, "GET", f"/containers/{made['uuid']}/attach")
    assert r.status == 409


def test_a_node_at_its_console_cap_answers_503_with_the_reason(make_cluster):
    """With max_sessions sessions open, exec --interactive and attach through that
    node answer 503 naming the limit, before any URL is issued."""
    c = make_cluster(SimConfig(nodes=2))
    made = c.create(0, name="web")
    console = c.node(1).parts.console
    console.sessions.update(object() for _ in range(console.config.max_sessions))
    try:
        r = c.api(1, "POST", f"/containers/{made['uuid']}/execute?command=sh"
                             "&interactive=true&run=false")
        assert r.status == 503 and "max_sessions" in r.json["errors"][0]["detail"]
        assert c.api(1, "GET", f"/containers/{made['uuid']}/attach").status == 503
    finally:
        console.sessions.clear()
