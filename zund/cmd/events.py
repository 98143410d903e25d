"""``zund events [--follow] [--json]``: the local daemon's event journal (over its
control socket, ``GET /events``): what this node did and saw — placements, bids
won, containers started/stopped/died, members joined/suspect/dead, heals.

``--follow`` keeps asking with a long poll (``wait``) and prints new events as they
come, until interrupted. ``--json`` prints one JSON object per line.

Exit codes: 0 ok (or interrupted while following), 1 daemon unreachable or error.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import urllib.parse

from zund.cmd.peers import _UnixHTTPConnection
from zund.common.paths import control_socket_path
from zund.conf import load_conf
from zund.events import format_event

#: seconds one follow request may be held by the daemon (its cap is 30)
FOLLOW_WAIT_S = 25


def fetch_events(sock_path: str, since: int = 0, wait_s: int = 0,
                 limit: int | None = None) -> dict:
    query = {"since": since, "wait": wait_s}
    if limit:
        query["limit"] = limit
    conn = _UnixHTTPConnection(sock_path, timeout=wait_s + 10.0)
    try:
        conn.request("GET", "/events?" + urllib.parse.urlencode(query))
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"daemon answered {resp.status}: {body[:200]!r}")
        return json.loads(body)
    finally:
        conn.close()


def main(argv: list[str], out=None) -> int:
    out = out if out is not None else sys.stdout
    ap = argparse.ArgumentParser(prog="zund events",
                                 description="Show this node's recent events.")
    ap.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    ap.add_argument("--tail", type=int, default=0, help="only the last N events")
    ap.add_argument("--socket", help="control socket (default: <state_path>/control.sock)")
    ns, rest = ap.parse_known_args(argv)
    sock = ns.socket
    if sock is None:
        conf = load_conf(rest, "Show this node's events.")
        sock = control_socket_path(conf.state_path)

    def show(events: list[dict]) -> None:
        for e in events:
            out.write((json.dumps(e, sort_keys=True) if ns.json else format_event(e)) + "\n")
        out.flush()

    since = 0
    try:
        answer = fetch_events(sock, limit=ns.tail or None)
        show(answer["events"])
        since = answer["last_seq"]
        while ns.follow:
            answer = fetch_events(sock, since=since, wait_s=FOLLOW_WAIT_S)
            show(answer["events"])
            since = max(since, answer["last_seq"])
    except KeyboardInterrupt:
        return 0
    except (OSError, RuntimeError, ValueError, http.client.HTTPException) as e:
        print(f"zund events: cannot reach the zund daemon at {sock}: {e}\n"
              f"Is `zund serve` running with the same --config-file?", file=sys.stderr)
        return 1
    return 0
