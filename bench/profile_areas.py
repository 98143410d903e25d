"""Where a node's CPU goes, by area: a cProfile (``pstats``) summed by what the code
is for, not by function (``bench/placement_real.py --profile-out``).

A placement's cost is spread thin over hundreds of functions; no one of them is
worth a line of the report, but their areas are (the reactor and its Deferreds,
HTTP, the peer channel, gossip, the store, logging, crypto...). Each function's
own time (``tottime``) goes to the area of its file. Built-ins and the standard
library do work for whoever called them: their time goes to their callers' areas,
split as cProfile recorded it per caller (one level up; a call from another
built-in or stdlib function stays in "Python built-ins and stdlib").
"""

from __future__ import annotations

import os
import pstats

#: (marker in the file's path, area), first match wins; zund's own files are
#: grouped by module below
_LIBRARY_AREAS = (
    ("/twisted/web/", "HTTP server (twisted.web, klein)"),
    ("/klein/", "HTTP server (twisted.web, klein)"),
    ("/werkzeug/", "HTTP server (twisted.web, klein)"),
    ("/twisted/logger/", "logging (twisted.logger)"),
    ("/twisted/", "reactor, sockets and Deferreds (twisted.internet, twisted.python)"),
    ("/msgpack/", "msgpack"),
    ("/cryptography/", "crypto (AES-GCM, HMAC)"),
    ("/jsonschema", "JSON-schema validation"),
    ("/referencing/", "JSON-schema validation"),
    ("/oslo_policy/", "policy (oslo.policy)"),
    ("/prometheus_client/", "metrics (prometheus_client)"),
    ("/attr/", "attrs"),
)

#: zund modules -> area (by prefix of the dotted module; first match wins)
_ZUND_AREAS = (
    ("zund.cluster.channel", "zund peer RPC (channel, server, client, wire, signing, sealing)"),
    ("zund.cluster.peer_", "zund peer RPC (channel, server, client, wire, signing, sealing)"),
    ("zund.cluster.wire", "zund peer RPC (channel, server, client, wire, signing, sealing)"),
    ("zund.cluster.messages", "zund peer RPC (channel, server, client, wire, signing, sealing)"),
    ("zund.cluster.signing", "zund peer RPC (channel, server, client, wire, signing, sealing)"),
    ("zund.cluster.sealing", "zund peer RPC (channel, server, client, wire, signing, sealing)"),
    ("zund.cluster.metadata", "zund gossip and node metadata"),
    ("zund.cluster.announcer", "zund gossip and node metadata"),
    ("zund.cluster.view", "zund gossip and node metadata"),
    ("zund.gossip", "zund gossip and node metadata"),
    ("zund.cluster.placement", "zund placement and bidding"),
    ("zund.cluster.bidding", "zund placement and bidding"),
    ("zund.cluster.policies", "zund placement and bidding"),
    ("zund.cluster.quota", "zund quotas"),
    ("zund.cluster.replicas", "zund replicas"),
    ("zund.cluster", "zund cluster, other"),
    ("zund.api", "zund API (pipeline, schemas, policy, views)"),
    ("zund.store", "zund store (SQLite, reactor side)"),
    ("zund.records", "zund store (SQLite, reactor side)"),
    ("zund.compute.reconcile", "zund periodic reconcile"),
    ("zund.runtimes", "zund runtime (fake)"),
    ("zund.compute", "zund compute (lifecycle, tasks)"),
    ("zund.common.http", "HTTP server (twisted.web, klein)"),
    ("zund", "zund, other"),
)

STDLIB = "Python built-ins and stdlib"
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
        for prefix, area in _ZUND_AREAS:
            if mod == prefix or mod.startswith(prefix + ".") or (
                    prefix.endswith("_") and mod.startswith(prefix)):
                return area
        return "zund, other"
    norm = path.replace("\\", "/")
    for marker, area in _LIBRARY_AREAS:
        if marker in norm:
            return area
    if path == "~" or path.startswith("<") or norm.startswith(_STDLIB_DIR + "/") and (
            "site-packages" not in norm):
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
        for (cpath, _cl, _cn), value in callers.items():
            share = value[2] if isinstance(value, tuple) else 0.0
            totals[area_of(cpath)] = totals.get(area_of(cpath), 0.0) + share
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
        where = zund_module(path) or (path if path == "~" else
                                      path.replace("\\", "/").rsplit("site-packages/", 1)[-1])
        out.append({"function": f"{where}:{line}({name})", "share": round(tt / whole, 3),
                    "calls": nc})
    return out
