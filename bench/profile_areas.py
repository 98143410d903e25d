"""Where a node's CPU goes, by area: a cProfile (``pstats``) summed by what the code
is for, not by function (``bench/placement_real.py --profile-out``).

A placement's cost is spread thin over hundreds of functions; no one of them is
worth a line of the report, but their areas are (the reactor and its Deferreds,
HTTP, the peer channel, gossip, the store, logging, crypto...). Each function's
own time (``tottime``) goes to the area of its file. Built-ins and the standard
library do work for whoever called them: their time goes to their callers' areas,
split as cProfile recorded it per caller (one level up; a call from another
built-in or stdlib function stays in "Python built-ins and stdlib").

Also the two steps a bench takes to profile its nodes (``profile_started_nodes``,
``wait_for_files``), shared by ``bench/api_cost.py`` and ``bench/placement_real.py``.
"""

from __future__ import annotations

import os
import pstats
import time

HTTP = "HTTP server (twisted.web, klein)"
SCHEMA = "JSON-schema validation"

#: (marker in the file's path, area), first match wins; zund's own files are
#: grouped by module below
_LIBRARY_AREAS = (
    ("/twisted/web/", HTTP),
    ("/klein/", HTTP),
    ("/werkzeug/", HTTP),
    ("/twisted/logger/", "logging (twisted.logger)"),
    ("/twisted/", "reactor, sockets and Deferreds (twisted.internet, twisted.python)"),
    ("/msgpack/", "msgpack"),
    ("/cryptography/", "crypto (AES-GCM, HMAC)"),
    ("/jsonschema", SCHEMA),
    ("/referencing/", SCHEMA),
    ("/oslo_policy/", "policy (oslo.policy)"),
    ("/prometheus_client/", "metrics (prometheus_client)"),
    ("/attr/", "attrs"),
)

PEER_RPC = "zund peer RPC (channel, server, client, wire, signing, sealing)"
GOSSIP = "zund gossip and node metadata"

#: zund areas and the dotted-module prefixes they hold, first match wins (a prefix
#: ending in "_" matches any module that starts with it: ``peer_client``...)
_ZUND_AREAS = (
    (PEER_RPC, ("zund.cluster.channel", "zund.cluster.peer_", "zund.cluster.wire",
                "zund.cluster.messages", "zund.cluster.signing", "zund.cluster.sealing")),
    (GOSSIP, ("zund.cluster.metadata", "zund.cluster.announcer", "zund.cluster.view",
              "zund.gossip")),
    ("zund placement and bidding", ("zund.cluster.placement", "zund.cluster.bidding",
                                    "zund.cluster.policies")),
    ("zund quotas", ("zund.cluster.quota",)),
    ("zund replicas", ("zund.cluster.replicas",)),
    ("zund cluster, other", ("zund.cluster",)),
    ("zund API (pipeline, schemas, policy, views)", ("zund.api",)),
    ("zund store (SQLite, reactor side)", ("zund.store", "zund.records")),
    ("zund periodic reconcile", ("zund.compute.reconcile",)),
    ("zund runtime (fake)", ("zund.runtimes",)),
    ("zund compute (lifecycle, tasks)", ("zund.compute",)),
    (HTTP, ("zund.common.http",)),
)

STDLIB = "Python built-ins and stdlib"
#: the directory put on a bench node's PYTHONPATH to profile it (sitecustomize.py)
CPROFILE_SITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cprofile_site")
_STDLIB_DIR = os.path.dirname(os.__file__)


def zund_module(path: str) -> str | None:
    """``zund.cluster.quota`` for ``.../zund/cluster/quota.py`` (None: not zund's)."""
    parts = path.replace("\\", "/").split("/")
    if "zund" not in parts or "site-packages" in parts:
        return None
    i = len(parts) - 1 - parts[::-1].index("zund")
    mod = ".".join(parts[i:])
    return mod[:-3] if mod.endswith(".py") else mod


def area_of(path: str) -> str:
    """The area of a function defined in file ``path`` (``~`` for a built-in)."""
    mod = zund_module(path)
    if mod is not None:
        for area, prefixes in _ZUND_AREAS:
            for prefix in prefixes:
                if mod == prefix or mod.startswith(prefix if prefix.endswith("_")
                                                   else prefix + "."):
                    return area
        return "zund, other"
    norm = path.replace("\\", "/")
    for marker, area in _LIBRARY_AREAS:
        if marker in norm:
            return area
    if path == "~" or path.startswith("<") or (
            norm.startswith(_STDLIB_DIR + "/") and "site-packages" not in norm):
        return STDLIB
    return "other libraries"


def by_area(stats: pstats.Stats) -> list[dict]:
    """``[{"area", "share", "seconds"}]`` of the profile's own time, largest first
    (shares of the whole: they sum to 1)."""
    totals: dict[str, float] = {}
    for (path, _line, _name), (_cc, _nc, tt, _ct, callers) in stats.stats.items():
        area = area_of(path)
        if area != STDLIB or not callers:
            totals[area] = totals.get(area, 0.0) + tt
            continue
        # a built-in or stdlib function: its time to its callers' areas, as recorded
        attributed = 0.0
        for (cpath, _cl, _cn), (_ccc, _cnc, share, _cct) in callers.items():
            caller_area = area_of(cpath)
            totals[caller_area] = totals.get(caller_area, 0.0) + share
            attributed += share
        totals[STDLIB] = totals.get(STDLIB, 0.0) + max(0.0, tt - attributed)
    whole = sum(totals.values()) or 1.0
    rows = [{"area": a, "share": round(s / whole, 3), "seconds": round(s, 3)}
            for a, s in totals.items() if s > 0]
    rows.sort(key=lambda r: -r["seconds"])
    return rows


def top_functions(stats: pstats.Stats, n: int = 15) -> list[dict]:
    """The ``n`` Python functions with the most own time: ``{"function", "share",
    "calls"}`` (built-ins left out: ``by_area`` gives their time to their callers)."""
    whole = sum(v[2] for v in stats.stats.values()) or 1.0
    rows = sorted(((k, v) for k, v in stats.stats.items() if k[0] != "~"),
                  key=lambda kv: -kv[1][2])[:n]
    out = []
    for (path, line, name), (_cc, nc, tt, _ct, _callers) in rows:
        where = zund_module(path) or path.replace("\\", "/").rsplit("site-packages/", 1)[-1]
        out.append({"function": f"{where}:{line}({name})", "share": round(tt / whole, 3),
                    "calls": nc})
    return out


# -- profiling bench nodes ---------------------------------------------------------------

def profile_started_nodes(out: str) -> None:
    """Make every ``zund serve`` this process starts from now on profilable
    (``bench/cprofile_site/sitecustomize.py``): SIGUSR1 starts cProfile on its
    reactor thread, SIGUSR2 writes ``out`` ("%p" in it: the node's PID)."""
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (CPROFILE_SITE, os.environ.get("PYTHONPATH")) if p)
    os.environ["ZUND_BENCH_CPROFILE"] = os.path.abspath(out)


def wait_for_files(paths: list[str], timeout_s: float = 30.0) -> bool:
    """Wait until every file in ``paths`` exists (a node writes its profile
    atomically); False when ``timeout_s`` passed first."""
    deadline = time.monotonic() + timeout_s
    while not all(os.path.exists(p) for p in paths):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
