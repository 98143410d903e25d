"""``zund peers``: ask the local daemon (over its control socket) who its peers
are, and print a table or JSON.

Exit codes: 0 ok, 1 daemon unreachable or error.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import time

from zund.common.paths import control_socket_path
from zund.conf import load_conf


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 5.0):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def fetch_peers(sock_path: str, timeout: float = 5.0) -> list[dict]:
    conn = _UnixHTTPConnection(sock_path, timeout=timeout)
    try:
        conn.request("GET", "/peers")
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"daemon answered {resp.status}: {body[:200]!r}")
        return json.loads(body)["peers"]
    finally:
        conn.close()


def _ago(ts: float | None, now: float) -> str:
    if not ts:
        return "-"
    s = max(0, int(now - ts))
    if s < 120:
        return f"{s}s ago"
    if s < 7200:
        return f"{s // 60}m ago"
    return f"{s // 3600}h ago"


def format_table(peers: list[dict], now: float | None = None) -> str:
    now = time.time() if now is None else now
    header = ["NAME", "ADDRESS", "STATE", "INC", "CHANGED", "CPU FREE", "MEM FREE",
              "CONTAINERS", "TENANTS"]
    rows = [header]
    for p in sorted(peers, key=lambda p: p["name"]):
        s = p.get("summary") or {}
        rows.append([
            p["name"], p["addr"], p["state"], str(p["incarnation"]),
            _ago(p.get("last_change"), now),
            "-" if "cpu_free" not in s else f"{s['cpu_free']:g}",
            "-" if "mem_free_mb" not in s else f"{s['mem_free_mb']} MiB",
            "-" if "containers" not in s else str(s["containers"]),
            "-" if "tenants" not in s else str(s["tenants"]),
        ])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="zund peers", description="Show this node's peers.")
    ap.add_argument("--json", action="store_true", help="print a JSON list")
    ap.add_argument("--socket", help="control socket (default: <state_path>/control.sock)")
    ns, rest = ap.parse_known_args(argv)
    sock = ns.socket
    if sock is None:
        conf = load_conf(rest, "Show this node's peers.")
        sock = control_socket_path(conf.state_path)
    try:
        peers = fetch_peers(sock)
    except (OSError, RuntimeError, ValueError, http.client.HTTPException) as e:
        print(f"zund peers: cannot reach the zund daemon at {sock}: {e}\n"
              f"Is `zund serve` running with the same --config-file?", file=sys.stderr)
        return 1
    if ns.json:
        print(json.dumps(peers, indent=2, sort_keys=True))
    else:
        print(format_table(peers))
    return 0
