"""The pure mapping from zund's (status, task_state) to Nova's server states."""

from __future__ import annotations

import pytest

from zund.api.nova.views import server_state


@pytest.mark.parametrize("status,task,expected", [
    ("Creating", "image_pulling", ("BUILD", "building", "spawning", 0)),
    ("Creating", None, ("BUILD", "building", "scheduling", 0)),
    ("Created", None, ("SHUTOFF", "stopped", None, 4)),
    ("Running", None, ("ACTIVE", "active", None, 1)),
    ("Running", "container_stopping", ("ACTIVE", "active", "powering-off", 1)),
    ("Running", "container_rebooting", ("REBOOT", "active", "rebooting", 1)),
    ("Stopped", None, ("SHUTOFF", "stopped", None, 4)),
    ("Stopped", "container_starting", ("SHUTOFF", "stopped", "powering-on", 4)),
    ("Paused", None, ("PAUSED", "paused", None, 3)),
    ("Running", "container_pausing", ("ACTIVE", "active", "pausing", 1)),
    ("Rebuilding", "container_rebuilding", ("REBUILD", "active", "rebuilding", 0)),
    ("Deleting", "container_deleting", ("SHUTOFF", "stopped", "deleting", 4)),
    ("Deleted", None, ("DELETED", "deleted", None, 0)),
    ("Error", None, ("ERROR", "error", None, 0)),
    ("Dead", None, ("ERROR", "error", None, 6)),
    ("Unknown", None, ("UNKNOWN", None, None, 0)),
])
def test_zund_states_map_to_novas_status_vm_task_and_power_states(status, task, expected):
    """Each zund (status, task_state) shows as Nova's (status, vm, task, power)."""
    s = server_state(status, task)
    assert (s["status"], s["OS-EXT-STS:vm_state"], s["OS-EXT-STS:task_state"],
            s["OS-EXT-STS:power_state"]) == expected
