"""What runtimes hold outside container records (the micro-VM warm pool's guests)
counts as used capacity: ``capacity.with_held`` adds it to a node's usage (the
bidder, the gossip metadata and ``/v1/hosts`` all report that)."""

from zund.compute import capacity

FACTS = capacity.HostFacts(cpus=4, mem_total_mb=4608, disk_total_gb=100,
                           architecture="x86_64", os="Debian", kernel_version="6.1")
USED = capacity.Usage(cpu_used=1.0, mem_used_mb=512, containers=1, tenants={"p": 1})


def test_held_capacity_is_used_but_no_container():
    got = capacity.with_held(USED, capacity.Held(cpus=0.5, mem_mb=128, count=1))
    assert (got.cpu_used, got.mem_used_mb) == (1.5, 640)
    assert (got.containers, got.tenants) == (1, {"p": 1})


def test_nothing_held_leaves_usage_alone():
    assert capacity.with_held(USED, capacity.Held()) is USED
    assert capacity.with_held(USED, None) is USED


def test_helds_add_up():
    a = capacity.Held(cpus=0.5, mem_mb=128, count=1)
    assert a + a + capacity.Held() == capacity.Held(cpus=1.0, mem_mb=256, count=2)


def test_hosts_shows_held_capacity_as_used():
    plain = capacity.host_info("n1", FACTS, USED, {}, ["runc"])
    held = capacity.host_info("n1", FACTS, USED, {}, ["runc"],
                              held=capacity.Held(cpus=0.5, mem_mb=128, count=1))
    assert (plain["cpu_used"], plain["mem_used"]) == (1.0, 512)
    assert (held["cpu_used"], held["mem_used"]) == (1.5, 640)
    assert held["total_containers"] == 1
