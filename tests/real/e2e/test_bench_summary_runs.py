"""bench/run_all.py with real processes: a benchmark that crashes or hangs is a row
saying so, and the run goes on."""

import pstats
import subprocess
import sys
import time

from bench import profile_areas, run_all


def test_a_failing_or_hanging_benchmark_is_a_row_saying_so(tmp_path):
    """Exit without JSON and a timeout each give one row naming what happened."""
    crash = run_all.Bench("crash", ["-c", "import sys; sys.exit('boom')"], 30,
                          run_all.rows_heal)
    res = run_all.run_one(crash, 30, str(tmp_path))
    assert res["status"] == "exit 1" and "boom" in res["rows"][0]["note"]
    hang = run_all.Bench("hang", ["-c", "import time; time.sleep(60)"], 60, run_all.rows_heal)
    res = run_all.run_one(hang, 0.5, str(tmp_path))
    assert res["status"].startswith("timed out") and "timed out" in res["rows"][0]["note"]


def test_a_budgeted_benchmark_is_told_its_timeout_less_the_margin(tmp_path):
    """A benchmark with a ``budget_flag`` gets its own time budget on its command
    line (its timeout less BUDGET_MARGIN_S), so it can end early with fewer
    samples instead of being killed without JSON."""
    code = ("import json, sys; i = sys.argv.index('--time-budget-s'); "
            "print(json.dumps({'budget_s': float(sys.argv[i + 1])}))")
    bench = run_all.Bench("budgeted", ["-c", code], 300, run_all.rows_heal,
                          budget_flag="--time-budget-s")
    res = run_all.run_one(bench, 100, str(tmp_path))
    assert res["status"] == "ok"
    assert res["json"] == [{"budget_s": 100 - run_all.BUDGET_MARGIN_S}]


def test_host_load_names_a_process_that_keeps_a_core_busy():
    """The summary's first row says how busy the machine was before the benchmarks
    and which processes made it so."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        deadline = time.monotonic() + 10
        while True:  # until the spinner has run long enough to be sampled
            load = run_all.host_load(sample_s=1.0)
            top = {u["pid"]: u["cpu_pct_of_one_core"] for u in load["top"]}
            if top.get(spinner.pid, 0) > 50 or time.monotonic() > deadline:
                break
        assert top.get(spinner.pid, 0) > 50, load
        assert 0.2 <= load["busy"] <= 1.0
        assert load["speed_ms"] > 0
        row = run_all.host_row(load)
        assert row["bench"] == "host" and "python" in row["note"]
    finally:
        spinner.kill()
        spinner.wait()


def test_placement_real_profiles_every_node_and_says_where_their_cpu_goes(tmp_path):
    """``--profile-out``: five real nodes under cProfile during the measured creates;
    one merged pstats file, and areas that cover all of it, zund's placement and
    peer RPC among them (the report's "where the time goes" for the placement
    target)."""
    out = tmp_path / "placement.prof"
    proc = subprocess.run(
        [sys.executable, "bench/placement_real.py", "--requests", "100", "--warmup", "20",
         "--floor-calls", "100", "--profile-out", str(out)],
        cwd=run_all.ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    value = run_all.json_values(proc.stdout)[-1]
    assert value["placed"] == 100 and value["oversubscribed_nodes"] == []
    profile = value["profile"]
    stats = pstats.Stats(str(out))
    assert stats.total_tt > 0
    # the per-node files were merged and removed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["placement.prof"]
    areas = {a["area"]: a["share"] for a in profile["by_area"]}
    assert abs(sum(areas.values()) - 1.0) < 0.02
    assert areas["zund placement and bidding"] > 0
    assert areas[profile_areas.PEER_RPC] > 0
    assert profile["top_functions"]
