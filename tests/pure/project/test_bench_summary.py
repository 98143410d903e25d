"""bench/run_all.py: every benchmark becomes rows of one table; a benchmark that
fails, times out or lacks a figure is a row saying so, never a crash."""

import json

from bench import run_all, stats


def test_every_json_object_printed_is_collected_amid_other_output():
    """Progress lines are skipped; several JSON objects (one per mode) are all kept."""
    text = 'building image...\n{"mode": "sim", "overshoot": 0}\nnoise {not json\n' \
           + json.dumps({"mode": "real", "overshoot": 1}, indent=2) + "\ndone\n"
    assert [v["mode"] for v in run_all.json_values(text)] == ["sim", "real"]


def test_missing_figures_are_na_rows_not_errors():
    """A benchmark's JSON without the expected keys yields n/a cells and no verdict."""
    rows = run_all.rows_create_latency([{"benchmark": "create_latency"}])
    assert rows[0]["zund"] is None and rows[0]["met"] is None
    table = run_all.markdown([{"rows": rows}])
    assert "| n/a | n/a | n/a |" in table


def test_ratio_row_judges_against_the_target():
    """zund / reference is the ratio; met when it is at most the target."""
    rows = run_all.rows_create_latency([{"zund_p50_ms": 330.0, "docker_p50_ms": 300.0,
                                         "target_ratio": 1.10}])
    assert rows[0]["ratio"] == 1.1 and rows[0]["met"] is True
    rows = run_all.rows_memory([{"zund_idle_mb": 82.3, "serf_mb": 9.7, "zund_loaded_mb": 99,
                                 "dockerd_mb": 90, "target_idle_mb": 60, "target_loaded_mb": 80,
                                 "accepted": 1000}])
    assert [r["met"] for r in rows] == [False, False, None, None]  # keyed, docker: no target


def test_new_keys_of_other_benchmarks_are_picked_up_when_present():
    """Per-machine micro-VM results and gossip scenarios each become their own rows."""
    microvm = run_all.rows_microvm([{"target_ratio": 1.15, "machines": {
        "pc": {"runtime_median_s": 1.2, "bare_qemu_median_s": 1.0},
        "microvm": {"runtime_median_s": 0.5, "bare_qemu_median_s": 0.45}}}])
    assert [r["figure"].split(":")[0] for r in microvm] == ["microvm", "pc"]
    warm = run_all.rows_microvm([{"target_ratio": 1.15, "machines": {"microvm": {
        "runtime_median_s": 2.5, "bare_qemu_median_s": 2.0, "warm_median_s": 0.2,
        "warm_create_median_s": 0.02, "warm_start_median_s": 0.18}}}])
    pooled = next(r for r in warm if "warm pool" in r["figure"])
    assert pooled["ratio"] == 0.1 and pooled["met"] and "warm_pool_size" in pooled["note"]
    assert next(r for r in warm if "warm pool" not in r["figure"])["met"] is False
    gossip = run_all.rows_gossip_vs_serf([{"results": {
        "steady": {"zund": {"dissemination_median_s": 0.004, "detection_median_s": 1.0,
                            "false_positives": 0},
                   "serf": {"dissemination_median_s": 0.01, "detection_median_s": 2.0,
                            "false_positives": 0}},
        "starved": {"zund": {"detection_median_s": 1.5, "false_positives": 0}}}}])
    figures = [r["figure"] for r in gossip]
    assert "starved: kill -9 -> dead everywhere" in figures
    assert next(r for r in gossip if r["figure"].startswith("steady: metadata"))["met"]


def test_gossip_detection_row_names_its_kills_and_interval():
    """The detection ratio is a median of a few kills: its row says how many and
    the bootstrap interval the bench printed."""
    from bench.stats import ratio_ci

    zund, serf = [2.1, 2.9, 3.0, 3.6, 4.2], [5.1, 6.0, 6.2, 6.3, 7.0]
    ci = ratio_ci(zund, serf)
    assert ci[0] <= 3.0 / 6.2 <= ci[1]
    rows = run_all.rows_gossip_vs_serf([{"results": {"steady": {
        "zund": {"detection_s": zund, "detection_median_s": 3.0, "dissemination_median_s": 0.01,
                 "false_positives": []},
        "serf": {"detection_s": serf, "detection_median_s": 6.2, "dissemination_median_s": 0.3,
                 "false_positives": []}}},
        "ratio_ci95": {"steady": {"detection": list(ci)}}}])
    row = next(r for r in rows if r["figure"] == "steady: kill -9 -> dead everywhere")
    assert row["met"] and row["ratio"] == round(3.0 / 6.2, 3)
    assert "5 kills each" in row["note"] and f"ratio 95 % CI {ci[0]}-{ci[1]}" in row["note"]


def test_a_soak_run_budget_cuts_the_clients_run_to_fit():
    """bench/soak.py --time-budget-s: the clients' run shrinks so set-up, run and
    checks fit in the budget, never below the shortest soak worth having."""
    from bench import soak

    assert soak.budgeted_duration(60.0, None) == 60.0
    assert soak.budgeted_duration(60.0, 500.0) == 60.0
    assert soak.budgeted_duration(60.0, 60.0) == 60.0 - soak.SETUP_S
    assert soak.budgeted_duration(60.0, 10.0) == soak.MIN_DURATION_S


def test_a_benchmark_with_its_own_min_start_runs_where_others_are_skipped(
        monkeypatch, tmp_path):
    """With less left than --min-start-s, a benchmark that declares a lower
    ``min_start_s`` still starts (with its budget); one that does not is a
    'skipped' row."""
    code = ("import json, sys; i = sys.argv.index('--time-budget-s'); "
            "print(json.dumps({'budget_s': float(sys.argv[i + 1])}))")
    monkeypatch.setattr(run_all, "BENCHES", [
        run_all.Bench("plain", ["-c", "print('{}')"], 600, run_all.rows_heal),
        run_all.Bench("short", ["-c", code], 600, run_all.rows_heal,
                      budget_flag="--time-budget-s", min_start_s=80.0),
    ])
    monkeypatch.setattr(run_all, "host_load", lambda: {
        "busy": 0.0, "sample_s": 0.0, "cpus": 2, "loadavg": ["0", "0", "0"],
        "top": [], "speed_ms": 1.0})
    assert run_all.main(["--budget-s", "100", "--out-dir", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    status = {b["name"]: b["status"] for b in summary["benchmarks"]}
    assert status["plain"].startswith("skipped") and status["short"] == "ok"
    short = [b for b in summary["benchmarks"] if b["name"] == "short"][0]
    [told] = short["json"]
    assert abs(told["budget_s"] - (100 - run_all.BUDGET_MARGIN_S)) <= 1


def test_ratio_interval_brackets_the_ratio_and_narrows_with_samples():
    """bench.stats.ratio_ci: the interval holds the ratio of the medians, is the
    same for the same samples, and is narrower for more samples of the same
    spread; the summary row shows it."""
    import random

    from bench.stats import ratio_ci

    rng = random.Random(7)
    a10 = [1.1 * rng.uniform(0.7, 1.3) for _ in range(10)]
    b10 = [rng.uniform(0.7, 1.3) for _ in range(10)]
    lo, hi = ratio_ci(a10, b10)
    import statistics
    assert lo <= statistics.median(a10) / statistics.median(b10) <= hi
    assert ratio_ci(a10, b10) == (lo, hi)
    a200 = [1.1 * rng.uniform(0.7, 1.3) for _ in range(200)]
    b200 = [rng.uniform(0.7, 1.3) for _ in range(200)]
    lo2, hi2 = ratio_ci(a200, b200)
    assert hi2 - lo2 < hi - lo and lo2 < 1.1 < hi2
    assert ratio_ci([], [1.0]) == (None, None)
    rows = run_all.rows_create_latency([{"zund_p50_ms": 330.0, "docker_p50_ms": 300.0,
                                         "target_ratio": 1.10, "ratio_ci95": [lo, hi]}])
    assert f"ratio 95 % CI {lo}-{hi}" in rows[0]["note"]


def test_paired_ratios_cancel_a_drift_the_unpaired_ratio_cannot():
    """Rounds on a drifting host (each round's docker start 200-500 ms, zund 3 %
    above it in the same round): the median of per-round ratios and its interval
    (bench.stats.median_ci) sit tight around 1.03, far tighter than the ratio of
    the two medians; the summary row shows it without a target."""
    import random

    from bench.stats import median_ci, ratio_ci

    rng = random.Random(3)
    docker = [rng.uniform(200, 500) for _ in range(30)]
    zund = [d * 1.03 * rng.uniform(0.99, 1.01) for d in docker]
    paired = [z / d for z, d in zip(zund, docker)]
    lo, hi = median_ci(paired)
    assert lo <= 1.03 <= hi and hi - lo < 0.02
    ulo, uhi = ratio_ci(zund, docker)
    assert uhi - ulo > 5 * (hi - lo)
    assert median_ci(paired) == (lo, hi) and median_ci([]) == (None, None)
    rows = run_all.rows_create_latency([{"zund_p50_ms": 330.0, "docker_p50_ms": 320.0,
                                         "target_ratio": 1.10, "paired_ratio_median": 1.03,
                                         "paired_ratio_ci95": [lo, hi]}])
    paired_row = next(r for r in rows if "per-round" in r["figure"])
    assert paired_row["ratio"] == 1.03 and paired_row["met"] is None
    assert f"ratio 95 % CI {lo}-{hi}" in paired_row["note"]


def test_stolen_time_is_read_apart_from_the_machines_own_work():
    """user nice system idle iowait irq softirq steal: steal is neither this
    machine's work nor idle time, and guest times (already in user) count once."""
    before = [100, 0, 50, 800, 10, 0, 5, 35, 7, 0]
    after = [400, 0, 150, 1000, 20, 0, 25, 435, 57, 0]
    # deltas: user 300, system 100, idle 200, iowait 10, softirq 20, steal 400
    shares = stats.machine_shares(before, after)
    assert shares == {"busy": round(420 / 1030, 3), "stolen": round(400 / 1030, 3)}


def test_every_benchmark_reports_the_machine_it_ran_on(monkeypatch, tmp_path):
    """Each benchmark that printed figures gets a row of the CPU share stolen by the
    hypervisor while it ran (read from /proc/stat around it)."""
    monkeypatch.setattr(run_all, "BENCHES", [
        run_all.Bench("one", ["-c", "print('{\"p50_s\": 1.0}')"], 600, run_all.rows_heal)])
    assert run_all.main(["--budget-s", "600", "--out-dir", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    [one] = [b for b in summary["benchmarks"] if b["name"] == "one"]
    assert 0.0 <= one["machine"]["stolen"] <= 1.0 and 0.0 <= one["machine"]["busy"] <= 1.0
    [stolen] = [r for r in summary["rows"] if r["bench"] == "one" and "stolen" in r["figure"]]
    assert stolen["zund"] == one["machine"]["stolen"]
    [host] = [b for b in summary["benchmarks"] if b["name"] == "host"]
    assert 0.0 <= host["json"][0]["stolen"] <= 1.0
    assert "machine CPU stolen" in (tmp_path / "summary.md").read_text()
