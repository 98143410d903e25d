"""Where a node keeps things under its ``state_path`` (shared by the daemon and
the operator tools, so neither imports the other)."""

from __future__ import annotations

import os


def control_socket_path(state_path: str) -> str:
    """The daemon's local control socket (``zund peers`` asks it)."""
    return os.path.join(state_path, "control.sock")


def store_path(state_path: str) -> str:
    """The node's SQLite store."""
    return os.path.join(state_path, "zund.sqlite")


def gossip_snapshot_path(state_path: str) -> str:
    """The last known live gossip members (``zund.gossip.snapshot``)."""
    return os.path.join(state_path, "gossip-members.json")
