"""Real tier, issue 11 item 6: 50 clients × 2 minutes of mixed operations (create,
show, list, stop/start, delete) on 3 real ``zund serve`` processes (fake runtime),
``bench/soak.py`` at the issue's size: no 5xx, no unexpected answer, nothing lost
or doubled, every node's final list equals the clients' model, RSS and fds of
every node bounded."""

from __future__ import annotations

import json

from bench.soak import soak


def test_50_clients_for_2_minutes_of_mixed_operations_lose_and_double_nothing(tmp_path):
    """The soak's invariants all hold; its JSON is printed for the CI log."""
    out = soak(str(tmp_path), clients=50, duration_s=120.0)
    print("soak:", json.dumps(out))
    assert out["server_errors"] == 0, out["server_error_samples"]
    assert out["errors"] == 0, out["error_samples"]
    assert (out["lost"], out["doubled"], out["extra"]) == (0, 0, 0), \
        out["lost_doubled_extra_samples"]
    assert out["status_mismatch"] == []
    assert out["growth_ok"], out["processes"]
    assert out["ops_total"] > 1000, out["ops"]
