"""zund gossip vs HashiCorp Serf on loopback: failure detection and dissemination.

Five Serf agents (127.0.0.11-15, Debian's ``serf``) and five zund gossip
runners (``python -m zund.gossip.runner``, 127.0.0.1-5), both with the lan
profile (probe interval 1 s, probe timeout 0.5 s, gossip every 0.2 s to 3
nodes: the same LAN timings) and AES-GCM encryption on.  Each system runs two
scenarios, ``steady`` and ``starved`` (node 5's process alternately stopped
``--starve-stop`` s and resumed ``--starve-run`` s with SIGSTOP/SIGCONT, or with
``--starve=cgroup`` capped by a cgroup-v1 CPU quota: the same starvation for
both systems), each with ``--reps`` repetitions of:

- dissemination: one member changes its metadata (Serf: the ``tags`` RPC, i.e.
  what ``serf tags -set`` does; zund: POST ``/metadata``); the time from just
  before the request is sent until every other member shows the new value.
  Serf's RPC answers only after memberlist sent the broadcast once, so timing
  from the request's *answer* (as earlier versions did) hid Serf's wait for its
  next gossip tick;
- detection: ``kill -9`` one member (never the starved one); time until every
  survivor shows it dead (Serf ``failed``). The host stays up, so its kernel
  answers datagrams to the dead member's port with ICMP port unreachable: zund
  reads that (``zund.gossip.transport``, ``IP_RECVERR``) and ends its probe on the
  relays' nacks, memberlist's socket never hears of it. A dead host (power, a
  partition) says nothing; ``bench/gossip_sim.py`` measures that case;
- false positives: any member other than the victim seen dead/failed/left by
  anyone, in any phase.  Suspicions are not failures (Serf does not even show
  them); zund's are counted apart as ``suspect_observations``.

Each detection is explained in ``detection_detail`` (victim; when each survivor
showed it dead; zund: each survivor's suspect/dead events and Lifeguard local
health from the runner's ``/events``; Serf: from its info log, whether each
survivor's own suspicion ran out and with how many confirmations, or it learnt
the death by gossip).  The starved scenario runs at least ``--starved-reps``
repetitions: its times move in steps of one starvation cycle (the starved
member answers polls only while it runs) and with SWIM's random probe order.

Visibility is polled the same way on both sides, over one persistent
connection per member (Serf's msgpack RPC ``members``; the runner's HTTP
``/members``), every ``--poll`` s (``--detect-poll`` s while waiting for a
death), each observation timed at the midpoint of the poll that first saw it.  Serf's event stream is not used: the agent coalesces
member events for seconds, while its member list changes at once.

Prints JSON with medians, zund/serf ratios (``ratio_ci95``: their 95 % bootstrap
intervals, ``bench.stats.ratio_ci``) and the issue's targets.  Only
processes started here are signalled, by PID; only 127.0.0.0/8 is addressed.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import msgpack

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.stats import ratio_ci  # noqa: E402

N = 5
STARVED = N  # node 5 is the CPU-starved one in the starved scenario
KEY = base64.b64encode(b"zund-bench-key-0123456789abcdef!").decode()
POOL = ThreadPoolExecutor(max_workers=16)
TARGETS = {"dissemination": 0.5, "detection": 0.6}


class SerfRPC:
    """A minimal client of Serf's msgpack RPC (handshake, members, tags)."""

    def __init__(self, host: str, port: int):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.unpacker = msgpack.Unpacker(raw=False, unicode_errors="surrogateescape")
        self.seq = 0
        self.call("handshake", {"Version": 1})

    def _read(self):
        while True:
            try:
                return next(self.unpacker)
            except StopIteration:
                data = self.sock.recv(1 << 16)
                if not data:
                    raise ConnectionError("serf rpc closed")
                self.unpacker.feed(data)

    def call(self, command: str, body=None, reply_body: bool = False):
        self.seq += 1
        out = msgpack.packb({"Command": command, "Seq": self.seq})
        if body is not None:
            out += msgpack.packb(body)
        self.sock.sendall(out)
        header = self._read()
        if header.get("Error"):
            raise RuntimeError(f"serf rpc {command}: {header['Error']}")
        return self._read() if reply_body else None

    def close(self):
        self.sock.close()


class _System:
    name = ""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs: dict[int, subprocess.Popen] = {}
        self._clients: dict[int, object] = {}

    def _client(self, i):
        client = self._clients.get(i)
        if client is None:
            client = self._clients[i] = self._connect(i)
        return client

    def _drop(self, i):
        client = self._clients.pop(i, None)
        if client is not None:
            try:
                client.close()
            except Exception:
                pass

    def members(self, i) -> dict:
        try:
            return self._members(self._client(i))
        except Exception:
            self._drop(i)
            raise

    def set_meta(self, i, value):
        try:
            self._set_meta(self._client(i), value)
        except Exception:
            self._drop(i)
            raise

    def detection_detail(self, victim, survivors, t0, seen) -> dict:
        """One detection, explained: victim, and when each survivor showed it dead (s after the kill)."""
        return {"victim": f"n{victim}",
                "seen_dead_s": {f"n{p}": round(seen[p] - t0, 3) for p in sorted(seen or {})}}


class Serf(_System):
    name = "serf"

    def ip(self, i):
        return f"127.0.0.{10 + i}"

    def start(self, i):
        self._drop(i)
        args = ["serf", "agent", f"-node=n{i}", f"-bind={self.ip(i)}:7946", f"-rpc-addr={self.ip(i)}:7373",
                f"-encrypt={KEY}", "-log-level=info", "-profile=lan"]
        for j in range(1, N + 1):
            if j != i:
                args.append(f"-retry-join={self.ip(j)}:7946")
        args.append("-retry-interval=1s")
        log = open(os.path.join(self.workdir, f"serf-n{i}.log"), "ab")
        self.procs[i] = subprocess.Popen(args, stdout=log, stderr=log)

    def _connect(self, i):
        return SerfRPC(self.ip(i), 7373)

    def detection_detail(self, victim, survivors, t0, seen) -> dict:
        """Adds how each survivor's memberlist decided (its info log since the last
        detection): "suspect timeout (k confirmations)" if its own suspicion ran
        out, "gossip" if it learnt the death from a peer."""
        out = super().detection_detail(victim, survivors, t0, seen)
        offsets = self.__dict__.setdefault("_log_offsets", {})
        how = {}
        for p in survivors:
            path = os.path.join(self.workdir, f"serf-n{p}.log")
            try:
                with open(path, "rb") as f:
                    f.seek(offsets.get(p, 0))
                    text = f.read().decode(errors="replace")
                    offsets[p] = f.tell()
            except OSError:
                continue
            for line in text.splitlines():
                if f"Marking n{victim} as failed, suspect timeout reached" in line:
                    how[f"n{p}"] = "suspect timeout" + line[line.index("reached") + 7:].strip()
                    break
            else:
                how[f"n{p}"] = "gossip"
        out["how"] = how
        return out

    def _members(self, client) -> dict:
        data = client.call("members", reply_body=True)
        return {m["Name"]: (_norm(m["Status"]), (m.get("Tags") or {}).get("v", "")) for m in data["Members"]}

    def _set_meta(self, client, value):
        client.call("tags", {"Tags": {"v": value}, "DeleteTags": []})


class Zund(_System):
    name = "zund"

    def ip(self, i):
        return f"127.0.0.{i}"

    def start(self, i):
        self._drop(i)
        seeds = ",".join(f"{self.ip(j)}:9519" for j in range(1, N + 1) if j != i)
        args = [sys.executable, "-m", "zund.gossip.runner", f"--name=n{i}", f"--bind={self.ip(i)}:9519",
                f"--seeds={seeds}", f"--control-host={self.ip(i)}", "--control-port=9600", f"--key={KEY}",
                "--profile=lan", "--log-level=error"]
        log = open(os.path.join(self.workdir, f"zund-n{i}.log"), "ab")
        self.procs[i] = subprocess.Popen(args, stdout=log, stderr=log)

    def _connect(self, i):
        return http.client.HTTPConnection(self.ip(i), 9600, timeout=5)

    def _members(self, conn) -> dict:
        conn.request("GET", "/members")
        r = conn.getresponse()
        data = json.loads(r.read())
        return {m["name"]: (m["state"], base64.b64decode(m["meta"]).decode()) for m in data}

    def detection_detail(self, victim, survivors, t0, seen) -> dict:
        """Adds each survivor's suspect and dead events for the victim (runner ``/events``,
        s after the kill) and its local health score when it marked it dead: a dead
        event about 1 s (the suspicion minimum) after the first suspicion there means
        all Lifeguard confirmations arrived; later means fewer, or the dead gossip."""
        out = super().detection_detail(victim, survivors, t0, seen)
        name, events = f"n{victim}", {}
        for p in survivors:
            try:
                conn = http.client.HTTPConnection(self.ip(p), 9600, timeout=5)
                conn.request("GET", "/events")
                rows = json.loads(conn.getresponse().read())
                conn.close()
            except Exception:
                continue
            mine = [r for r in rows if r[2] == name and r[0] >= t0 and r[1] in ("suspect", "dead")]
            events[f"n{p}"] = {r[1]: round(r[0] - t0, 3) for r in reversed(mine)}
            for kind in ("suspect", "dead"):
                first = [r for r in mine if r[1] == kind]
                if first:
                    events[f"n{p}"][f"health_at_{kind}"] = first[0][4]
        out["events"] = events
        return out

    def _set_meta(self, conn, value):
        conn.request("POST", "/metadata", body=value.encode())
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"zund /metadata answered {r.status}")


def _norm(status):
    return {"failed": "dead", "alive": "alive", "left": "left", "leaving": "left"}.get(status, status)


# ------------------------------------------------------------ starvation

class Starver:
    """Starves one process the bench started: SIGSTOP/SIGCONT bursts or a cgroup CPU quota."""

    def __init__(self, mode: str, stop_s: float, run_s: float, quota_pct: float):
        self.mode, self.stop_s, self.run_s, self.quota_pct = mode, stop_s, run_s, quota_pct
        self._stop = threading.Event()
        self._thread = None
        self._cgroup = None
        self.pid = None

    def describe(self) -> dict:
        if self.mode == "sigstop":
            return {"mode": "sigstop", "node": f"n{STARVED}", "stopped_s": self.stop_s, "running_s": self.run_s}
        return {"mode": "cgroup", "node": f"n{STARVED}", "cpu_quota_pct": self.quota_pct}

    def cycle_s(self) -> float:
        """Length of one stop/run cycle (0 for a steady CPU quota)."""
        return self.stop_s + self.run_s if self.mode == "sigstop" else 0.0

    def start(self, pid: int) -> None:
        self.pid = pid
        if self.mode == "sigstop":
            self._stop.clear()
            self._thread = threading.Thread(target=self._bursts, daemon=True)
            self._thread.start()
            return
        path = f"/sys/fs/cgroup/cpu/zund-bench-{os.getpid()}"
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "cpu.cfs_period_us"), "w") as f:
            f.write("100000")
        with open(os.path.join(path, "cpu.cfs_quota_us"), "w") as f:
            f.write(str(int(1000 * self.quota_pct)))
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(pid))
        self._cgroup = path

    def _bursts(self):
        while not self._stop.is_set():
            try:
                os.kill(self.pid, signal.SIGSTOP)
                self._stop.wait(self.stop_s)
            finally:
                os.kill(self.pid, signal.SIGCONT)
            self._stop.wait(self.run_s)

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if self._cgroup is not None:
            try:
                with open("/sys/fs/cgroup/cpu/cgroup.procs", "w") as f:
                    f.write(str(self.pid))
            except OSError:
                pass  # the process is gone
            try:
                os.rmdir(self._cgroup)
            except OSError:
                pass
            self._cgroup = None


# ------------------------------------------------------------ measurement

def safe_members(system, i):
    start = time.monotonic()
    try:
        view = system.members(i)
    except Exception:
        view = {}
    return (start + time.monotonic()) / 2, view


def wait_until(system, peers, check, timeout_s, poll_s, ignore=(), observed=None):
    """Poll ``peers`` until ``check(view)`` holds for each; returns per-peer first-seen times.

    ``observed`` collects (observer, member, state) for every member other than
    ``ignore`` that is not alive: false positives and (zund) suspicions.
    """
    seen: dict[int, float] = {}
    deadline = time.monotonic() + timeout_s
    while len(seen) < len(peers) and time.monotonic() < deadline:
        pending = [p for p in peers if p not in seen]
        for p, (at, view) in zip(pending, POOL.map(lambda p: safe_members(system, p), pending)):
            if observed is not None:
                for name, (state, _) in view.items():
                    if name not in ignore and state != "alive":
                        observed.add((p, name, state))
            if view and check(view):
                seen[p] = at
        time.sleep(poll_s)
    return seen if len(seen) == len(peers) else None


def converged(system, peers, timeout_s, poll_s, observed=None):
    names = {f"n{i}" for i in peers}
    return wait_until(system, peers, lambda v: all(v.get(n, ("?",))[0] == "alive" for n in names),
                      timeout_s, poll_s, observed=observed) is not None


def run_scenario(system, reps, starver, poll_s, settle_s, detect_poll_s=0.02):
    everyone = list(range(1, N + 1))
    observed: set = set()
    for i in everyone:
        system.start(i)
    if not converged(system, everyone, 60, 0.1):
        raise RuntimeError(f"{system.name} did not converge")
    if starver is not None:
        starver.start(system.procs[STARVED].pid)
    detection, dissemination, details = [], [], []
    phase = random.Random(1)
    cycle_s = starver.cycle_s() if starver is not None else 0.0
    try:
        time.sleep(settle_s)
        origins = [i for i in everyone if starver is None or i != STARVED]
        victims = [i for i in everyone[1:] if starver is None or i != STARVED]
        for rep in range(reps):
            # -- dissemination: from just before the request until all others show it
            origin = origins[rep % len(origins)]
            value = f"{system.name}-{rep}-{time.time():.3f}"
            others = [p for p in everyone if p != origin]
            t0 = time.monotonic()
            system.set_meta(origin, value)
            seen = wait_until(system, others, lambda v: v.get(f"n{origin}", ("", ""))[1] == value, 30,
                              poll_s, observed=observed)
            if seen is not None:
                dissemination.append(max(seen.values()) - t0)
            # The dissemination wait ends when the starved member answers a poll, i.e.
            # just after it resumed: a fixed pause here would kill at the same phase of
            # its stop/run cycle every time, and since "dead everywhere" includes the
            # starved member's own view (shown only while it runs), every result would
            # snap to a grid one cycle (0.6 s) apart and a 7-rep median would jump by a
            # whole step.  A seeded uniform pause over one cycle (the same sequence for
            # both systems) spreads the kill over the cycle.
            time.sleep(0.3 + phase.uniform(0.0, cycle_s))
            # -- detection: kill -9, until every survivor shows it dead
            victim = victims[rep % len(victims)]
            survivors = [p for p in everyone if p != victim]
            proc = system.procs[victim]
            t0 = time.monotonic()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            seen = wait_until(system, survivors, lambda v: v.get(f"n{victim}", ("",))[0] == "dead", 90,
                              detect_poll_s, ignore={f"n{victim}"}, observed=observed)
            if seen is not None:
                detection.append(max(seen.values()) - t0)
            details.append(system.detection_detail(victim, survivors, t0, seen))
            system.start(victim)
            if not converged(system, everyone, 90, 0.05, observed=None):
                raise RuntimeError(f"{system.name}: n{victim} did not rejoin")
            time.sleep(settle_s)
    finally:
        if starver is not None:
            starver.stop()
        stop_all(system)
    false_positives = sorted(f"observer n{p} saw {n} {s}" for p, n, s in observed if s != "suspect")
    out = {
        "detection_s": [round(x, 3) for x in detection],
        "dissemination_s": [round(x, 4) for x in dissemination],
        "detection_median_s": round(statistics.median(detection), 3) if detection else None,
        "detection_min_max_s": [round(min(detection), 3), round(max(detection), 3)] if detection else None,
        "dissemination_median_s": round(statistics.median(dissemination), 4) if dissemination else None,
        "false_positives": false_positives,
        "missed": 2 * reps - len(detection) - len(dissemination),
        "detection_detail": details,
    }
    if system.name == "zund":
        out["suspect_observations"] = len([1 for _, _, s in observed if s == "suspect"])
    return out


def stop_all(system):
    for i in list(system.procs):
        system._drop(i)
    for proc in system.procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
    for proc in system.procs.values():
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    system.procs.clear()


#: the fewest repetitions a time budget leaves each system and scenario
MIN_REPS = 4
#: wall seconds one repetition (dissemination, kill -9, restart, settle) took on the
#: slowest CI host seen (232 s for 9 reps x 2 systems x 2 scenarios, with start-ups)
REP_S = 7.0


def budget_reps(budget_s, reps: int, starved_reps: int, scenarios: int,
                systems: int) -> tuple:
    """``(reps, starved_reps)`` cut so that ``systems`` x ``scenarios`` runs fit in
    ``budget_s`` at ``REP_S`` each (never below ``MIN_REPS``); as asked without one."""
    if not budget_s:
        return reps, starved_reps
    fit = max(MIN_REPS, int(budget_s / (REP_S * systems * max(1, scenarios))))
    return min(reps, fit), min(max(reps, starved_reps), fit)


def _ratio(z, s):
    return round(z / s, 3) if z is not None and s else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7, help="repetitions per system and scenario")
    parser.add_argument("--starved-reps", type=int, default=7,
                        help="at least this many repetitions in the starved scenario (its detection times "
                             "jump in steps of one starvation cycle and with SWIM's random probe order, so a "
                             "median of 5 moves by ~0.1 in ratio between runs)")
    parser.add_argument("--only", choices=["serf", "zund"], default=None)
    parser.add_argument("--scenarios", default="steady,starved")
    parser.add_argument("--starve", choices=["sigstop", "cgroup"], default="sigstop")
    parser.add_argument("--starve-stop", type=float, default=0.4, help="seconds stopped per burst")
    parser.add_argument("--starve-run", type=float, default=0.2, help="seconds running between bursts")
    parser.add_argument("--starve-quota", type=float, default=5.0, help="cgroup mode: CPU %% of one core")
    parser.add_argument("--poll", type=float, default=0.002,
                        help="seconds between visibility polls while a metadata change spreads")
    parser.add_argument("--detect-poll", type=float, default=0.02,
                        help="seconds between polls while waiting for a death (seconds-long)")
    parser.add_argument("--settle", type=float, default=1.0, help="quiet seconds before each repetition")
    parser.add_argument("--time-budget-s", type=float, default=None,
                        help="cut the repetitions (never below %d) so that every system and "
                             "scenario fits in this many seconds, at %g s per repetition"
                             % (MIN_REPS, REP_S))
    args = parser.parse_args(argv)
    asked = max(args.reps, args.starved_reps)
    reps_for = budget_reps(args.time_budget_s, args.reps, args.starved_reps,
                           len([s for s in args.scenarios.split(",") if s]),
                           1 if args.only else 2)
    args.reps, args.starved_reps = reps_for
    if shutil.which("serf") is None:
        print(json.dumps({"error": "serf binary not found"}))
        return 1
    workdir = tempfile.mkdtemp(prefix="gossip-vs-serf-")
    scenarios = [s for s in args.scenarios.split(",") if s]
    starver = Starver(args.starve, args.starve_stop, args.starve_run, args.starve_quota)
    results: dict = {}
    for scenario in scenarios:
        # Serf and zund alternate per scenario so both meet the same machine load.
        for cls in (Serf, Zund):
            if args.only and cls.name != args.only:
                continue
            system = cls(workdir)
            reps = max(args.reps, args.starved_reps) if scenario == "starved" else args.reps
            results.setdefault(scenario, {})[system.name] = run_scenario(
                system, reps, starver if scenario == "starved" else None, args.poll, args.settle,
                args.detect_poll)
    out = {"benchmark": "gossip_vs_serf", "nodes": N, "reps": args.reps,
           "starved_reps": max(args.reps, args.starved_reps), "profile": "lan", "encrypted": True,
           "reps_asked": asked, "time_budget_s": args.time_budget_s,
           "poll_s": args.poll, "detect_poll_s": args.detect_poll, "starvation": starver.describe(), "results": results,
           "targets": {"dissemination_ratio_max": TARGETS["dissemination"],
                       "detection_ratio_max": TARGETS["detection"], "false_positives": 0},
           "logs": workdir}
    ratios, met, cis = {}, {}, {}
    for scenario, res in results.items():
        if "serf" in res and "zund" in res:
            s, z = res["serf"], res["zund"]
            r = {"detection": _ratio(z["detection_median_s"], s["detection_median_s"]),
                 "dissemination": _ratio(z["dissemination_median_s"], s["dissemination_median_s"])}
            ratios[scenario] = r
            # how far a median of a few kills can be off: SWIM's random probe
            # order alone spreads one system's detection over ~2 s
            cis[scenario] = {"detection": ratio_ci(z["detection_s"], s["detection_s"]),
                             "dissemination": ratio_ci(z["dissemination_s"],
                                                       s["dissemination_s"])}
            met[scenario] = {
                "detection": r["detection"] is not None and r["detection"] <= TARGETS["detection"],
                "false_positives": not z["false_positives"] and not z["missed"],
            }
            if scenario == "steady":
                met[scenario]["dissemination"] = (r["dissemination"] is not None
                                                  and r["dissemination"] <= TARGETS["dissemination"])
    if ratios:
        out["ratio_zund_over_serf"] = ratios
        out["ratio_ci95"] = cis
        out["met"] = met
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
