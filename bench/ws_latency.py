"""Keystroke round-trip of an interactive exec: through a node that is NOT the
owner (client -> entry -> relay websocket -> owner -> Docker TTY -> back), through
the owner itself, and the same-run reference of a direct Docker exec attach (the
engine's hijacked socket, no zund). Prints JSON.

    python bench/ws_latency.py [--keys 300]

A 2-node cluster of real ``zund serve`` processes on 127.0.0.1-2 and real Docker;
the container runs ``sh`` with a TTY; each exec runs ``cat`` on a TTY, so one
typed byte comes back as the TTY's echo. A round trip is: send one byte, read
until that byte is back. The three paths are measured in interleaved rounds of 50
keystrokes so that machine load hits them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import sys
import tempfile
import time

import docker
import websocket

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.stats import pct  # noqa: E402
from tests.support.nodeproc import (free_port, remove_docker_objects, start_cluster,  # noqa: E402
                                stop_cluster)

IMAGE = "zund-test/busybox:latest"
KEYS = b"abcdefghijklmnopqrstuvwxyz"


def _zund_console(node, uuid: str):
    r = node.api("POST", f"/containers/{uuid}/execute",
                 params={"command": "cat", "interactive": "true", "run": "false"})
    r.raise_for_status()
    ws = websocket.create_connection(r.json()["proxy_url"], subprotocols=["binary"],
                                     skip_utf8_validation=True, timeout=10)

    def roundtrip(key: bytes) -> float:
        t0 = time.perf_counter()
        ws.send_binary(key)
        got = b""
        while key not in got:
            data = ws.recv()
            got += data if isinstance(data, bytes) else data.encode()
        return time.perf_counter() - t0

    return roundtrip, ws.close


def _docker_console(client: docker.APIClient, uuid: str):
    exec_id = client.exec_create(f"zun-{uuid}", ["cat"], stdin=True, tty=True)["Id"]
    sock = client.exec_start(exec_id, tty=True, socket=True)
    raw = getattr(sock, "_sock", sock)
    raw.setblocking(True)

    def roundtrip(key: bytes) -> float:
        t0 = time.perf_counter()
        raw.sendall(key)
        got = b""
        while key not in got:
            select.select([raw], [], [], 10)
            got += raw.recv(4096)
        return time.perf_counter() - t0

    def close():
        try:
            raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raw.close()

    return roundtrip, close


def summary(samples: list[float]) -> dict:
    ms = [s * 1000 for s in samples]
    return {"n": len(ms), "p50_ms": round(pct(ms, 50), 3), "p99_ms": round(pct(ms, 99), 3),
            "max_ms": round(max(ms), 3)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=300, help="keystrokes per path")
    args = ap.parse_args(argv)
    wd = tempfile.mkdtemp(prefix="zund-ws-bench-")
    per_node = {i: {"console": {"port": str(free_port(f"127.0.0.{i}"))}} for i in (1, 2)}
    nodes = start_cluster(wd, 2, "wsb", per_node=per_node)
    try:
        r = nodes[0].api("POST", "/containers?run=true",
                         json={"image": IMAGE, "command": ["sh"], "interactive": True,
                               "tty": True, "name": "bench-tty"})
        r.raise_for_status()
        uuid = r.json()["uuid"]
        rec = nodes[0].wait_status(uuid, "Running")
        owner = next(n for n in nodes if n.name == rec["host"])
        other = next(n for n in nodes if n is not owner)
        engine = docker.APIClient(version="auto")
        paths = {"zund_via_non_owner": _zund_console(other, uuid),
                 "zund_via_owner": _zund_console(owner, uuid),
                 "docker_exec_attach": _docker_console(engine, uuid)}
        samples: dict = {name: [] for name in paths}
        for name, (rt, _) in paths.items():  # warm up every path
            for key in KEYS[:5]:
                rt(bytes([key]))
        done = 0
        while done < args.keys:
            batch = min(50, args.keys - done)
            for name, (rt, _) in paths.items():
                for i in range(batch):
                    samples[name].append(rt(bytes([KEYS[(done + i) % len(KEYS)]])))
            done += batch
        for _, close in paths.values():
            close()
        out = {"benchmark": "ws_keystroke_roundtrip", "keys_per_path": args.keys,
               "cluster": {"nodes": 2, "owner": owner.name, "entry": other.name},
               **{name: summary(s) for name, s in samples.items()}}
        ref = out["docker_exec_attach"]
        via = out["zund_via_non_owner"]
        out["relay_overhead_p50_ms"] = round(via["p50_ms"] - ref["p50_ms"], 3)
        out["relay_overhead_p99_ms"] = round(via["p99_ms"] - ref["p99_ms"], 3)
        print(json.dumps(out, indent=2))
    finally:
        stop_cluster(nodes)
        for n in nodes:
            remove_docker_objects(n.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
