"""Security groups on the vxlan backend (issue 16): prints JSON.

Two ``zund serve`` processes (Docker, ``[network] driver = vxlan``), each in a
network namespace the benchmark creates (``tests.support.netns``: 10.216.0.1-2);
server ``s`` (node 2, group ``web``) and client ``c`` (node 1, ``default``) on one
tenant network (10.93.0.0/24). Measured from the client's namespace (its sandbox,
entered with ``nsenter``; the host's ``ping`` and ``iperf3``):

- ``open_s`` / ``close_s``: ``add_security_group web`` / ``remove_security_group``
  on ``c`` (through node 1's API) until a ping to ``s`` first succeeds / first
  fails (``--rounds`` times; the rules of ``s`` on the other node change);
- ``iperf3``: TCP throughput ``c`` -> ``s`` with the server port's chain
  (``with_rules``) and, in the same run, with the server port's FORWARD jump
  removed by the benchmark (``without_rules``: br_netfilter stays on, so this is
  the cost of the per-port chain and its conntrack match only).

Numbers measured on a loaded machine are noisy; CI re-measures on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.network import _iperf  # noqa: E402

TOKEN = "admin:bench"
OLD = {"OpenStack-API-Version": "container 1.14"}


def _pings(prefix, addr) -> bool:
    return subprocess.run([*prefix, "busybox", "ping", "-c", "1", "-W", "1", addr],
                          capture_output=True, timeout=30).returncode == 0


INTERVAL_S = 0.05


def _seqs(prefix, addr, count: int = 80) -> list[int]:
    """The echo sequence numbers answered by one ping run (``count`` echoes, one
    every ``INTERVAL_S``; one ICMP id, so one conntrack entry)."""
    out = subprocess.run([*prefix, "busybox", "ping", "-c", str(count), "-i", str(INTERVAL_S),
                          "-w", str(int(count * INTERVAL_S) + 2), addr],
                         capture_output=True, text=True, timeout=60).stdout
    return [int(m) for m in re.findall(r"seq=(\d+)", out)]


def _until(predicate, timeout_s: float) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            raise RuntimeError(f"not within {timeout_s} s")
    return round(time.monotonic() - start, 3)


def _stats(xs: list) -> dict:
    xs = sorted(xs)
    return {"p50_s": xs[len(xs) // 2], "max_s": xs[-1], "n": len(xs)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0)
    ns = ap.parse_args(argv)
    import docker

    from tests.support.tenant_net import addr, make_net, run, vxlan_cluster

    with tempfile.TemporaryDirectory(prefix="zund-sgbench-") as tmp, \
            vxlan_cluster(tmp, tag="sb", subnet="10.216.0") as cluster:
        n1, n2 = cluster.nodes
        net_id = make_net(n1, TOKEN, "sg", "10.93.0.0/24")["uuid"]
        c = run(n1, TOKEN, "sg-client", n1.name, nets=[{"network": "sg"}])
        s = run(n2, TOKEN, "sg-server", n2.name, nets=[{"network": "sg"}],
                security_groups=["web"])
        client = docker.APIClient()
        try:
            pids = [client.inspect_container("zund-sbx-" + rec["uuid"])["State"]["Pid"]
                    for rec in (c, s)]
        finally:
            client.close()
        ns_c, ns_s = (["nsenter", "-t", str(pid), "-n"] for pid in pids)
        addr_s = addr(s, net_id)
        if _pings(ns_c, addr_s):
            raise RuntimeError("default reached web before any change")
        opens, closes = [], []
        # a ping run starts right after the API answered; the first answered
        # (open) / first unanswered (close) echo dates the change to
        # INTERVAL_S; the same after a full sync_interval as the bound
        for _ in range(ns.rounds):
            for action, want, out in (("add", True, opens), ("remove", False, closes)):
                t0 = time.monotonic()
                r = n1.api("POST", f"/containers/{c['uuid']}/{action}_security_group"
                           "?name=web", token=TOKEN, headers=OLD)
                assert r.status_code == 202, r.text
                api_s = time.monotonic() - t0
                seqs = _seqs(ns_c, addr_s)
                if want:
                    if not seqs:
                        raise RuntimeError("never opened within the ping run")
                    out.append(round(api_s + min(seqs) * INTERVAL_S, 3))
                else:
                    # after the last answer (a loss before it is not the close)
                    gone = max(seqs) + 1 if seqs else 0
                    if gone >= 80:
                        raise RuntimeError("never closed within the ping run")
                    out.append(round(api_s + gone * INTERVAL_S, 3))
                _until(lambda: _pings(ns_c, addr_s) == want, 30)
        r = n1.api("POST", f"/containers/{c['uuid']}/add_security_group?name=web",
                   token=TOKEN, headers=OLD)
        assert r.status_code == 202, r.text
        _until(lambda: _pings(ns_c, addr_s), 30)
        with_rules = _iperf(ns_s, ns_c, addr_s, ns.seconds)
        # the reference: the server port's jump to its chain taken out of FORWARD
        u2 = ["ip", "netns", "exec", n2.ns]
        rules = subprocess.run([*u2, "iptables", "-S", "FORWARD"], capture_output=True,
                               text=True, timeout=30).stdout.splitlines()
        jumps = [line for line in rules if "--physdev-out" in line and "zsg-" in line]
        for line in jumps:
            subprocess.run([*u2, "iptables", "-D", *line.split()[1:]], check=True,
                           timeout=30)
        without_rules = _iperf(ns_s, ns_c, addr_s, ns.seconds)
        out = {"open_s": _stats(opens), "close_s": _stats(closes),
               "iperf3": {"with_rules": with_rules, "without_rules": without_rules},
               "rounds": ns.rounds, "seconds": ns.seconds, "sync_interval_s": 1.0,
               "note": "shared, loaded machine: noisy; CI re-measures on a quiet one"}
        for rec, node in ((c, n1), (s, n2)):
            node.api("DELETE", f"/containers/{rec['uuid']}?force=true", token=TOKEN)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
