"""bench/profile_areas.py: a profile summed by area, built-ins charged to their
callers, so the placement report says where a node's CPU goes."""

import cProfile
import pstats

from bench import profile_areas, run_all

TWISTED = "/v/lib/python3.11/site-packages/twisted/internet/defer.py"
QUOTA = "/src/zund/cluster/quota.py"
CHANNEL = "/src/zund/cluster/channel.py"


def stats_of(entries: dict) -> pstats.Stats:
    """A ``pstats.Stats`` holding exactly ``entries`` (as cProfile records them)."""
    prof = cProfile.Profile()
    prof.enable()
    prof.disable()
    stats = pstats.Stats(prof)
    stats.stats = entries
    return stats


def test_files_map_to_their_areas():
    assert profile_areas.area_of(QUOTA) == "zund quotas"
    assert profile_areas.area_of("/src/zund/cluster/peer_client.py") == \
        profile_areas.area_of(CHANNEL)
    assert profile_areas.area_of("/src/zund/gossip/state.py") == \
        profile_areas.area_of("/src/zund/cluster/metadata.py")
    assert profile_areas.area_of(TWISTED).startswith("reactor")
    assert profile_areas.area_of("/v/site-packages/twisted/web/http.py").startswith("HTTP")
    assert profile_areas.area_of("~") == profile_areas.STDLIB
    assert profile_areas.zund_module("/src/zund/store.py") == "zund.store"
    # an installed copy of a library named like zund is not zund's code
    assert profile_areas.zund_module("/v/site-packages/zund/store.py") is None


def test_builtin_time_goes_to_its_callers_and_shares_sum_to_one():
    """``sorted`` called from quota (0.1 s) and from the reactor (0.2 s): each area
    gets its part; nothing is counted twice or lost."""
    stats = stats_of({
        (TWISTED, 1, "_runCallbacks"): (1, 1, 0.5, 0.8, {}),
        (QUOTA, 10, "holder"): (1, 1, 0.2, 0.3, {}),
        ("~", 0, "<built-in method builtins.sorted>"): (2, 2, 0.3, 0.3, {
            (QUOTA, 10, "holder"): (1, 1, 0.1, 0.1),
            (TWISTED, 1, "_runCallbacks"): (1, 1, 0.2, 0.2)}),
    })
    rows = {r["area"]: r for r in profile_areas.by_area(stats)}
    assert rows["zund quotas"]["seconds"] == 0.3
    assert rows[profile_areas.area_of(TWISTED)]["seconds"] == 0.7
    assert profile_areas.STDLIB not in rows
    assert abs(sum(r["share"] for r in rows.values()) - 1.0) < 0.01
    top = profile_areas.top_functions(stats, 5)
    assert [t["function"] for t in top] == ["twisted/internet/defer.py:1(_runCallbacks)",
                                           "zund.cluster.quota:10(holder)"]


def test_a_real_profile_is_summarised():
    """A cProfile of real calls gives areas whose shares sum to one."""
    prof = cProfile.Profile()
    prof.enable()
    sorted(str(i) for i in range(2000))
    prof.disable()
    rows = profile_areas.by_area(pstats.Stats(prof))
    assert rows and abs(sum(r["share"] for r in rows) - 1.0) < 0.01


def test_the_summary_has_a_row_per_area_and_na_without_a_profile():
    value = {"placements_per_s": 55.0, "profile": {
        "by_area": [{"area": "zund quotas", "share": 0.6, "seconds": 6.0},
                    {"area": "attrs", "share": 0.395, "seconds": 3.95},
                    {"area": "msgpack", "share": 0.005, "seconds": 0.05}],
        "top_functions": [{"function": "zund.cluster.quota:10(holder)", "share": 0.5,
                           "calls": 9}]}}
    rows = run_all.rows_placement_profile([value])
    shares = {r["figure"]: r["zund"] for r in rows}
    assert shares["share of node CPU: zund quotas"] == 0.6
    assert "share of node CPU: msgpack" not in shares  # under 1 %: left out
    assert "holder" in rows[-1]["note"]
    assert run_all.rows_placement_profile([{}])[0]["zund"] is None
