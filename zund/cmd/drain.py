"""``zund drain``: drain this node through its control socket — the local form of
``openstack appcontainer service disable HOST zun-compute``: the node stops winning
bids (gossiped ``draining``) and moves its ``auto_heal`` containers away one at a
time (``zund.cluster.healer``). ``--undo`` ends it (``service enable``);
``--status`` only shows where it is.

Exit codes: 0 ok, 1 daemon unreachable or error.
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


def call(sock_path: str, method: str, reason: str | None = None,
         timeout: float = 30.0) -> dict:
    """One request to the control socket's ``/drain``; its JSON answer."""
    path = "/drain"
    if reason:
        path += "?" + urllib.parse.urlencode({"reason": reason})
    conn = _UnixHTTPConnection(sock_path, timeout=timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"daemon answered {resp.status}: {body[:200]!r}")
        return json.loads(body)
    finally:
        conn.close()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="zund drain", description=__doc__.split("\n\n")[0])
    ap.add_argument("--reason", help="shown as the service's disabled_reason")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--undo", action="store_true", help="end the drain (service enable)")
    group.add_argument("--status", action="store_true", help="only show the drain state")
    ap.add_argument("--socket", help="control socket (default: <state_path>/control.sock)")
    ns, rest = ap.parse_known_args(argv)
    sock = ns.socket
    if sock is None:
        conf = load_conf(rest, "Drain this node.")
        sock = control_socket_path(conf.state_path)
    method = "GET" if ns.status else "DELETE" if ns.undo else "POST"
    try:
        state = call(sock, method, ns.reason)
    except (OSError, RuntimeError, ValueError, http.client.HTTPException) as e:
        print(f"zund drain: cannot reach the zund daemon at {sock}: {e}\n"
              f"Is `zund serve` running with the same --config-file?", file=sys.stderr)
        return 1
    print(json.dumps(state, indent=2, sort_keys=True))
    return 0
