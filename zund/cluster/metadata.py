"""What a node tells its peers about itself: the gossip metadata blob.

``zund/gossip`` carries it as opaque bytes; this module decides what is inside
(DESIGN.md "Gossip metadata"). Packed with msgpack and bounded to
``MAX_META_BYTES``; the tenant table is cut to the top K projects (with a flag)
so the blob always fits.
"""

from __future__ import annotations

import msgpack

from zund.compute import capacity

SCHEMA_VERSION = 1
MAX_META_BYTES = 1024
DEFAULT_TOP_K = 16


def build(node_facts: dict, usage: capacity.Usage, limits: dict, tenants: dict[str, int],
          top_k: int = DEFAULT_TOP_K, host: capacity.HostFacts | None = None) -> dict:
    """The metadata dict. ``node_facts``: az, runtimes, labels, api, peer, draining."""
    ranked = sorted(tenants.items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "v": SCHEMA_VERSION,
        "az": node_facts.get("az", "nova"),
        "runtimes": list(node_facts.get("runtimes", [])),
        "labels": dict(node_facts.get("labels", {})),
        "api": node_facts.get("api", ""),
        "peer": node_facts.get("peer", ""),
        "cap": {
            "cpus": limits["cpus"],
            "cpu_used": round(usage.cpu_used, 3),
            "mem_mb": limits["mem_mb"],
            "mem_used_mb": usage.mem_used_mb,
            "disk_gb": limits["disk_gb"],
            "disk_used_gb": usage.disk_used_gb,
            "containers": usage.containers,
        },
        # the host's own totals (what /v1/hosts shows); ``cap`` holds the
        # schedulable limits after reservations and allocation ratios
        "host": {} if host is None else {
            "cpus": host.cpus, "mem_mb": host.mem_total_mb, "disk_gb": host.disk_total_gb,
            "arch": host.architecture, "os": host.os, "kernel": host.kernel_version,
        },
        "tenants": dict(ranked[:top_k]),
        "tenants_truncated": len(ranked) > top_k,
        "ntenants": len(ranked),
        "draining": bool(node_facts.get("draining", False)),
    }


def encode(meta: dict) -> bytes:
    """Pack; shrink the tenant table until the blob fits MAX_META_BYTES."""
    meta = dict(meta)
    blob = msgpack.packb(meta, use_bin_type=True)
    while len(blob) > MAX_META_BYTES and meta.get("tenants"):
        keep = max(0, len(meta["tenants"]) // 2)
        meta["tenants"] = dict(list(meta["tenants"].items())[:keep])
        meta["tenants_truncated"] = True
        blob = msgpack.packb(meta, use_bin_type=True)
    if len(blob) > MAX_META_BYTES:
        meta["labels"] = {}
        blob = msgpack.packb(meta, use_bin_type=True)
    if len(blob) > MAX_META_BYTES:
        raise ValueError(f"metadata of {len(blob)} bytes exceeds {MAX_META_BYTES}")
    return blob


def decode(blob: bytes) -> dict | None:
    """The metadata dict, or None when the blob is empty or not ours."""
    if not blob:
        return None
    try:
        meta = msgpack.unpackb(blob, raw=False, strict_map_key=True, max_bin_len=MAX_META_BYTES,
                               max_str_len=MAX_META_BYTES, max_map_len=256, max_array_len=256)
    except (ValueError, msgpack.UnpackException, TypeError):
        return None
    if not isinstance(meta, dict) or meta.get("v") != SCHEMA_VERSION:
        return None
    return meta


def summary(meta: dict | None) -> dict:
    """Free capacity and occupancy, for `zund peers`."""
    if not meta:
        return {}
    cap = meta.get("cap", {})
    return {
        "cpu_free": round(cap.get("cpus", 0) - cap.get("cpu_used", 0), 2),
        "mem_free_mb": cap.get("mem_mb", 0) - cap.get("mem_used_mb", 0),
        "containers": cap.get("containers", 0),
        "tenants": meta.get("ntenants", len(meta.get("tenants", {}))),
        "az": meta.get("az"),
        "runtimes": meta.get("runtimes", []),
        "draining": meta.get("draining", False),
    }
