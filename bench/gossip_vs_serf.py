"""zund gossip vs HashiCorp Serf on loopback: failure detection and dissemination.

Five Serf agents (127.0.0.11-15, Debian's ``serf``) and five zund gossip
runners (``python -m zund.gossip.runner``, 127.0.0.1-5), both with lan timings
and encryption on.  For each system, >= 5 repetitions of:

- detection: ``kill -9`` one member; time until *every* survivor reports it
  dead/failed (Serf: ``serf members -format json``; zund: the runner's
  ``/members``);
- dissemination: change one member's metadata (``serf tags -set`` / POST
  ``/metadata``); time until every other member shows it;
- false positives: any member other than the victim seen not-alive.

Each observation is timed at the midpoint of the poll that first saw it, so
the cost of spawning ``serf members`` is not charged to Serf.  Prints JSON with
medians and zund/serf ratios.  Only processes started here are killed, by PID.
Only 127.0.0.0/8 is addressed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

N = 5
KEY = base64.b64encode(b"zund-bench-key-0123456789abcdef!").decode()
POOL = ThreadPoolExecutor(max_workers=16)


class Serf:
    name = "serf"

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs: dict[int, subprocess.Popen] = {}

    def ip(self, i):
        return f"127.0.0.{10 + i}"

    def start(self, i):
        args = ["serf", "agent", f"-node=n{i}", f"-bind={self.ip(i)}:7946", f"-rpc-addr={self.ip(i)}:7373",
                f"-encrypt={KEY}", "-log-level=err", "-profile=lan"]
        for j in range(1, N + 1):
            if j != i:
                args.append(f"-retry-join={self.ip(j)}:7946")
        args.append("-retry-interval=1s")
        log = open(os.path.join(self.workdir, f"serf-n{i}.log"), "ab")
        self.procs[i] = subprocess.Popen(args, stdout=log, stderr=log)

    def members(self, i) -> dict:
        out = subprocess.run(["serf", "members", f"-rpc-addr={self.ip(i)}:7373", "-format=json"],
                             capture_output=True, timeout=5)
        if out.returncode != 0:
            return {}
        data = json.loads(out.stdout)
        return {m["name"]: (_norm(m["status"]), m.get("tags", {}).get("v", "")) for m in data["members"]}

    def set_meta(self, i, value):
        subprocess.run(["serf", "tags", f"-rpc-addr={self.ip(i)}:7373", "-set", f"v={value}"],
                       capture_output=True, timeout=5, check=True)


class Zund:
    name = "zund"

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs: dict[int, subprocess.Popen] = {}

    def ip(self, i):
        return f"127.0.0.{i}"

    def start(self, i):
        seeds = ",".join(f"{self.ip(j)}:9519" for j in range(1, N + 1) if j != i)
        args = [sys.executable, "-m", "zund.gossip.runner", f"--name=n{i}", f"--bind={self.ip(i)}:9519",
                f"--seeds={seeds}", f"--control-host={self.ip(i)}", "--control-port=9600", f"--key={KEY}",
                "--profile=lan", "--log-level=error"]
        log = open(os.path.join(self.workdir, f"zund-n{i}.log"), "ab")
        self.procs[i] = subprocess.Popen(args, stdout=log, stderr=log)

    def members(self, i) -> dict:
        with urllib.request.urlopen(f"http://{self.ip(i)}:9600/members", timeout=2) as r:
            data = json.loads(r.read())
        return {m["name"]: (m["state"], base64.b64decode(m["meta"]).decode()) for m in data}

    def set_meta(self, i, value):
        req = urllib.request.Request(f"http://{self.ip(i)}:9600/metadata", data=value.encode(), method="POST")
        with urllib.request.urlopen(req, timeout=2) as r:
            r.read()


def _norm(status):
    return {"failed": "dead", "alive": "alive", "left": "left", "leaving": "left"}.get(status, status)


def safe_members(system, i):
    start = time.monotonic()
    try:
        view = system.members(i)
    except Exception:
        view = {}
    return (start + time.monotonic()) / 2, view


def wait_until(system, peers, check, timeout_s, false_positive_ignore=(), fp_log=None):
    """Poll ``peers`` until ``check(view)`` holds for each; returns per-peer first-seen times."""
    seen: dict[int, float] = {}
    deadline = time.monotonic() + timeout_s
    while len(seen) < len(peers) and time.monotonic() < deadline:
        pending = [p for p in peers if p not in seen]
        for p, (at, view) in zip(pending, POOL.map(lambda p: safe_members(system, p), pending)):
            if fp_log is not None:
                for name, (state, _) in view.items():
                    if name not in false_positive_ignore and state != "alive":
                        fp_log.add((p, name, state))
            if view and check(view):
                seen[p] = at
        time.sleep(0.02)
    return seen if len(seen) == len(peers) else None


def converged(system, peers, timeout_s=60):
    names = {f"n{i}" for i in peers}
    return wait_until(system, peers, lambda v: {n for n, (s, _) in v.items() if s == "alive"} >= names
                      and all(v.get(n, ("?",))[0] == "alive" for n in names), timeout_s) is not None


def run_system(system, reps):
    for i in range(1, N + 1):
        system.start(i)
    everyone = list(range(1, N + 1))
    if not converged(system, everyone, 60):
        raise RuntimeError(f"{system.name} did not converge")
    time.sleep(2)
    detection, dissemination, fp = [], [], set()
    for rep in range(reps):
        # -- dissemination
        origin = 1 + rep % N
        value = f"{system.name}-{rep}-{time.time():.3f}"
        others = [p for p in everyone if p != origin]
        system.set_meta(origin, value)
        # from the moment the origin confirmed the change: the set command's own
        # cost (spawning `serf tags` vs one HTTP POST) is not gossip
        t_set = time.monotonic()
        seen = wait_until(system, others, lambda v: v.get(f"n{origin}", ("", ""))[1] == value, 30, fp_log=fp)
        if seen is not None:
            dissemination.append(max(seen.values()) - t_set)
        time.sleep(0.5)
        # -- detection
        victim = 2 + rep % (N - 1)
        survivors = [p for p in everyone if p != victim]
        proc = system.procs[victim]
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        seen = wait_until(system, survivors, lambda v: v.get(f"n{victim}", ("",))[0] == "dead", 90,
                          false_positive_ignore={f"n{victim}"}, fp_log=fp)
        if seen is not None:
            detection.append(max(seen.values()) - t0)
        system.start(victim)
        if not converged(system, everyone, 90):
            raise RuntimeError(f"{system.name}: n{victim} did not rejoin")
        time.sleep(3)
    return {
        "detection_s": [round(x, 3) for x in detection],
        "dissemination_s": [round(x, 3) for x in dissemination],
        "detection_median_s": round(statistics.median(detection), 3) if detection else None,
        "dissemination_median_s": round(statistics.median(dissemination), 3) if dissemination else None,
        "false_positives": sorted(f"observer n{p} saw {n} {s}" for p, n, s in fp),
    }


def stop_all(system):
    for proc in system.procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in system.procs.values():
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", choices=["serf", "zund"], default=None)
    args = parser.parse_args(argv)
    if shutil.which("serf") is None:
        print(json.dumps({"error": "serf binary not found"}))
        return 1
    workdir = tempfile.mkdtemp(prefix="gossip-vs-serf-")
    results = {}
    for cls in (Serf, Zund):
        if args.only and cls.name != args.only:
            continue
        system = cls(workdir)
        try:
            results[system.name] = run_system(system, args.reps)
        finally:
            stop_all(system)
    out = {"benchmark": "gossip_vs_serf", "nodes": N, "reps": args.reps, "profile": "lan", "encrypted": True,
           "results": results, "logs": workdir}
    if "serf" in results and "zund" in results:
        s, z = results["serf"], results["zund"]
        out["ratio_zund_over_serf"] = {
            "detection": round(z["detection_median_s"] / s["detection_median_s"], 3),
            "dissemination": round(z["dissemination_median_s"] / s["dissemination_median_s"], 3),
        }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
