"""Tenant network data path (issue 16): prints JSON.

Two ``zund serve`` processes (Docker, ``[network] driver = vxlan``), each in a
network namespace the benchmark creates, joined by a veth underlay
(``tests.support.netns``: 10.213.0.1-2). One container per node on one tenant
network (10.92.0.0/24). Measured inside the containers' namespaces (the sandbox
that owns each container's namespace, entered with ``nsenter``; the host's
``ping`` and ``iperf3``):

- ``vxlan``: ping round trip (``--pings`` samples, p50/p99/max ms) and iperf3 TCP
  throughput (``--seconds``) container → container across the nodes;
- ``underlay``: the same between the two node namespaces over the bare veth
  underlay, in the same run (the reference: VXLAN encapsulation + bridge + veth
  is what the tenant path adds).

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

TOKEN = "admin:bench"


def _ping(prefix: list[str], addr: str, n: int) -> dict:
    out = subprocess.run([*prefix, "busybox", "ping", "-c", str(n), "-i", "0.05", addr],
                         capture_output=True, text=True, timeout=60 + n).stdout
    rtts = sorted(float(m) for m in re.findall(r"time=([\d.]+) ms", out))
    if not rtts:
        raise RuntimeError(f"no ping answers from {addr}:\n{out}")

    def pct(p):
        return round(rtts[min(len(rtts) - 1, int(p * len(rtts)))], 3)

    return {"p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": rtts[-1], "n": len(rtts)}


def _iperf(server: list[str], client: list[str], addr: str, seconds: float) -> dict:
    srv = subprocess.Popen([*server, "iperf3", "-s", "-p", "5299"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            p = subprocess.run([*client, "iperf3", "-c", addr, "-p", "5299", "-J", "-t",
                                str(seconds)], capture_output=True, text=True,
                               timeout=seconds + 30)
            refused = "unable to connect" in p.stdout  # iperf3 -J may still exit 0
            if not refused or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # the server is not listening yet
        data = json.loads(p.stdout)
        if data.get("error") or "sum_received" not in data.get("end", {}):
            srv.kill()
            raise RuntimeError(f"iperf3 to {addr}: {data.get('error')} (server: "
                               f"{srv.communicate(timeout=10)[1].strip()})")
        end = data["end"]
        return {"gbit_s": round(end["sum_received"]["bits_per_second"] / 1e9, 3),
                "retransmits": end["sum_sent"].get("retransmits")}
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.wait(10)
        time.sleep(0.5)  # the port is free again for the next server


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pings", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=3.0)
    ns = ap.parse_args(argv)
    import docker

    from tests.support.tenant_net import addr, make_net, run, vxlan_cluster

    with tempfile.TemporaryDirectory(prefix="zund-netbench-") as tmp, \
            vxlan_cluster(tmp, tag="nb", subnet="10.213.0") as cluster:
        n1, n2 = cluster.nodes
        net_id = make_net(n1, TOKEN, "bench", "10.92.0.0/24")["uuid"]
        recs = [run(node, TOKEN, f"bench-{node.name}", node.name,
                    nets=[{"network": "bench"}]) for node in (n1, n2)]
        client = docker.APIClient()
        try:
            pids = [client.inspect_container("zund-sbx-" + rec["uuid"])["State"]["Pid"]
                    for rec in recs]
        finally:
            client.close()
        ns1, ns2 = (["nsenter", "-t", str(pid), "-n"] for pid in pids)
        addr2 = addr(recs[1], net_id)
        u1, u2 = (["ip", "netns", "exec", node.ns] for node in (n1, n2))
        # the first packets resolve ARP through the flood entries (set when the
        # second node's block claim reached the first): wait for an answer
        deadline = time.monotonic() + 30
        while subprocess.run([*ns1, "busybox", "ping", "-c", "1", "-W", "1", addr2],
                             capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{addr2} never answered")
        out = {
            "vxlan": {"ping": _ping(ns1, addr2, ns.pings),
                      "iperf3": _iperf(ns2, ns1, addr2, ns.seconds)},
            "underlay": {"ping": _ping(u1, n2.addr, ns.pings),
                         "iperf3": _iperf(u2, u1, n2.addr, ns.seconds)},
            "mtu": {"tenant": 1450, "underlay": 1500},
            "pings": ns.pings, "seconds": ns.seconds,
            "note": "shared, loaded machine: noisy; CI re-measures on a quiet one",
        }
        for rec, node in zip(recs, (n1, n2)):
            node.api("DELETE", f"/containers/{rec['uuid']}?force=true", token=TOKEN)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
