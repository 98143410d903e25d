"""Quotas on a real cluster: 5 ``zund serve`` processes (fake runtime) on
127.0.0.1..5, a container quota of 20 set through the API, and 50 concurrent
creates of that project sent through the 5 nodes in turn: exactly 20 containers,
30 answers 403 with Zun's message, and the usages say 20 afterwards."""

from __future__ import annotations

import concurrent.futures

from tests.support.nodeproc import start_cluster, stop_cluster

TEST_IMAGE = "zund-test/busybox:latest"  # the fake runtime's local image
TENANT = "alice:projq"
RUNNER = ["sleep", "1000000"]


def create(node, i: int):
    r = node.api("POST", "/containers?run=true", token=TENANT,
                 json={"name": f"q{i}", "image": TEST_IMAGE, "command": RUNNER,
                       "cpu": 0.1, "memory": 32})
    return r.status_code, r.json()


def test_fifty_concurrent_creates_through_five_processes_end_with_exactly_the_quota(workdir):
    """containers=20, 50 concurrent creates via 5 entry processes: 20 accepted,
    30 refused 403 "Quota exceeded for resources: ['containers']", 20 containers
    exist on the nodes, and GET /quotas/projq?usages=true shows in_use 20."""
    cluster = start_cluster(workdir, 5, "quota", runtimes="fake", cpus=16, memory_mb=8192)
    try:
        r = cluster[2].api("PUT", "/quotas/projq", json={"containers": 20})
        assert r.status_code == 200 and r.json()["containers"] == 20, r.text
        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(lambda i: create(cluster[i % 5], i), range(50)))
        statuses = sorted(s for s, _ in answers)
        assert statuses.count(202) == 20 and statuses.count(403) == 30, statuses
        details = {b["errors"][0]["detail"] for s, b in answers if s == 403}
        assert details == {"Quota exceeded for resources: ['containers']"}
        accepted = {b["uuid"] for s, b in answers if s == 202}
        listed = cluster[4].api("GET", "/containers?limit=1000", token=TENANT)
        assert listed.status_code == 200 and "Zund-Partial-Nodes" not in listed.headers
        assert {c["uuid"] for c in listed.json()["containers"]} == accepted
        for node in cluster:  # any node answers with the holder's count
            shown = node.api("GET", "/quotas/projq?usages=true", token=TENANT)
            assert shown.status_code == 200, shown.text
            assert shown.json()["containers"] == {"limit": 20, "in_use": 20}
            assert shown.json()["cpu"]["in_use"] == 2
    finally:
        stop_cluster(cluster)
