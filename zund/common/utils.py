"""Small helpers with no better home."""

from __future__ import annotations


def parse_hostport(value: str, default_port: int) -> tuple[str, int]:
    """``host[:port]`` -> (host, port)."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.lstrip(":")
        return host, int(port) if port else default_port
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, default_port
    return host, int(port)
