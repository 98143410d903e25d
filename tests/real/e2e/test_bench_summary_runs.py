"""bench/run_all.py with real processes: a benchmark that crashes or hangs is a row
saying so, and the run goes on."""

from bench import run_all


def test_a_failing_or_hanging_benchmark_is_a_row_saying_so(tmp_path):
    """Exit without JSON and a timeout each give one row naming what happened."""
    crash = run_all.Bench("crash", ["-c", "import sys; sys.exit('boom')"], 30,
                          run_all.rows_heal)
    res = run_all.run_one(crash, 30, str(tmp_path))
    assert res["status"] == "exit 1" and "boom" in res["rows"][0]["note"]
    hang = run_all.Bench("hang", ["-c", "import time; time.sleep(60)"], 60, run_all.rows_heal)
    res = run_all.run_one(hang, 0.5, str(tmp_path))
    assert res["status"].startswith("timed out") and "timed out" in res["rows"][0]["note"]
