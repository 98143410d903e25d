"""Pure status rules: allowed actions, runtime mapping, docker-ps style detail."""

import datetime

import pytest

from zund.compute import states
from zund.runtimes.base import RuntimeStatus


@pytest.mark.parametrize("action,status,allowed", [
    ("start", "Created", True), ("start", "Stopped", True), ("start", "Error", True),
    ("start", "Running", False), ("stop", "Running", True), ("stop", "Stopped", False),
    ("pause", "Running", True), ("pause", "Paused", False), ("unpause", "Paused", True),
    ("unpause", "Running", False), ("kill", "Running", True), ("kill", "Stopped", False),
    ("reboot", "Stopped", True), ("reboot", "Paused", False),
    ("delete", "Running", False), ("delete", "Stopped", True), ("delete", "Error", True),
    ("delete_after_stop", "Running", True), ("delete_force", "Paused", True),
    ("execute", "Running", True), ("execute", "Stopped", False),
    ("logs", "Stopped", True), ("logs", "Creating", False),
    ("update", "Paused", True), ("update", "Error", False),
])
def test_valid_states_table(action, status, allowed):
    """Each action is accepted exactly in Zun's listed statuses."""
    assert states.is_allowed(action, status) is allowed


@pytest.mark.parametrize("current,runtime,expected", [
    ("Creating", RuntimeStatus.CREATED, "Created"),
    ("Error", RuntimeStatus.CREATED, "Error"),
    ("Running", RuntimeStatus.EXITED, "Stopped"),
    ("Running", RuntimeStatus.PAUSED, "Paused"),
    ("Stopped", RuntimeStatus.RUNNING, "Running"),
    ("Running", RuntimeStatus.DEAD, "Dead"),
    ("Running", RuntimeStatus.RESTARTING, "Restarting"),
    ("Running", RuntimeStatus.REMOVING, "Stopped"),
])
def test_runtime_status_mapping(current, runtime, expected):
    """Runtime states map to Zun statuses as zun-api §6.3 says."""
    assert states.status_from_runtime(current, runtime) == expected


def test_status_detail_docker_ps_style():
    """Detail reads like docker ps."""
    now = datetime.datetime(2026, 1, 1, 12, 0, 0)
    five_min = now - datetime.timedelta(minutes=5)
    assert states.status_detail("Running", None, five_min, None, now) == "Up 5 minutes"
    assert states.status_detail("Paused", None, five_min, None, now) == "Up 5 minutes (paused)"
    assert states.status_detail("Stopped", 3, five_min, five_min, now) == "Exited(3) 5 minutes ago"
    assert states.status_detail("Created", None, None, None, now) == "Created"
    assert states.status_detail("Error", None, None, None, now) is None
