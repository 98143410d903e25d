"""JSON views of zund records, shaped exactly as Zun answers (zun-api.md §6.2, §10).

Pure functions: they get the record, the base URL for links and what the caller
may see (decided by the controllers through policy), and return plain dicts.
"""

from __future__ import annotations

import datetime
from typing import Any, Iterable, Sequence
from urllib.parse import urlencode

from zund.api.microversions import APIVersion, v
from zund.compute import states
from zund.records import utcnow

#: container keys only shown when policy ``container:get_one:<key>`` allows
ADMIN_ONLY_CONTAINER_KEYS = ("host", "runtime", "privileged", "image_pull_policy")

CONTAINER_KEYS = (
    "uuid", "links", "name", "image", "image_driver", "command", "entrypoint", "status",
    "status_reason", "status_detail", "task_state", "cpu", "memory", "disk", "cpu_policy",
    "environment", "labels", "restart_policy", "workdir", "hostname", "ports", "addresses",
    "security_groups", "interactive", "tty", "auto_remove", "auto_heal", "healthcheck",
    "registry_id", "user_id", "project_id", "created_at", "updated_at",
) + ADMIN_ONLY_CONTAINER_KEYS

HOST_KEYS = (
    "uuid", "links", "hostname", "mem_total", "mem_used", "cpus", "cpu_used", "disk_total",
    "disk_used", "disk_quota_supported", "total_containers", "architecture", "os_type", "os",
    "kernel_version", "labels", "runtimes", "enable_cpu_pinning",
)


def zun_time(t: datetime.datetime | None) -> str | None:
    """``str(datetime)`` without microseconds: ``2018-03-04 19:48:49``."""
    if t is None:
        return None
    return str(t.replace(microsecond=0, tzinfo=None))


def action_time(t: datetime.datetime | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SS.ffffff`` as Zun's container_actions show it."""
    return None if t is None else t.strftime("%Y-%m-%dT%H:%M:%S.%f")


def links(base_url: str, collection: str, ident: str) -> list[dict]:
    return [{"href": f"{base_url}/v1/{collection}/{ident}", "rel": "self"},
            {"href": f"{base_url}/{collection}/{ident}", "rel": "bookmark"}]


def _restart_policy(policy: dict | None) -> dict | None:
    if policy is None:
        return None
    out = dict(policy)
    if out.get("MaximumRetryCount") is not None:
        out["MaximumRetryCount"] = str(out["MaximumRetryCount"])
    return out


def container(rec: Any, base_url: str, visible_admin_keys: Iterable[str] = ()) -> dict:
    """One container. ``visible_admin_keys``: which of ADMIN_ONLY_CONTAINER_KEYS
    the caller may see; the others are omitted entirely (Zun's behaviour)."""
    visible = set(visible_admin_keys)
    out = {
        "uuid": rec.uuid,
        "links": links(base_url, "containers", rec.uuid),
        "name": rec.name,
        "image": rec.image,
        "image_driver": rec.image_driver,
        "command": list(rec.command) if rec.command is not None else None,
        "entrypoint": list(rec.entrypoint) if rec.entrypoint is not None else None,
        "status": rec.status,
        "status_reason": rec.status_reason,
        # derived at answer time, as docker ps does: the stored text is as old as
        # the record's last write (reconcile.sync_key leaves it out)
        "status_detail": states.status_detail(rec.status, rec.exit_code, rec.started_at,
                                              rec.finished_at, utcnow()),
        "task_state": rec.task_state,
        "cpu": float(rec.cpu) if rec.cpu is not None else None,
        "memory": str(rec.memory) if rec.memory is not None else None,
        "disk": rec.disk if rec.disk is not None else 0,
        "cpu_policy": rec.cpu_policy,
        "environment": dict(rec.environment or {}),
        "labels": dict(rec.labels or {}),
        "restart_policy": _restart_policy(rec.restart_policy),
        "workdir": rec.workdir,
        "hostname": rec.hostname,
        "ports": list(rec.ports or []),
        "addresses": dict(rec.addresses or {}),
        "security_groups": list(rec.security_groups or []),
        "interactive": bool(rec.interactive),
        "tty": bool(rec.tty),
        "auto_remove": bool(rec.auto_remove),
        "auto_heal": bool(rec.auto_heal),
        "healthcheck": dict(rec.healthcheck or {}),
        "registry_id": rec.registry_id,
        "user_id": rec.user_id,
        "project_id": rec.project_id,
        "created_at": zun_time(rec.created_at),
        "updated_at": zun_time(rec.updated_at),
    }
    for key in ADMIN_ONLY_CONTAINER_KEYS:
        if key in visible:
            out[key] = getattr(rec, key)
    return out


def next_link(base_url: str, collection: str, items: Sequence[dict], limit: int,
              sort_key: str | None = None, sort_dir: str | None = None,
              marker_key: str = "uuid") -> str | None:
    """Zun's ``next``: only when the page is full (len == limit)."""
    if not items or len(items) != limit:
        return None
    query = {}
    if sort_key is not None:
        query["sort_key"] = sort_key
    if sort_dir is not None:
        query["sort_dir"] = sort_dir
    query["limit"] = limit
    query["marker"] = items[-1][marker_key]
    return f"{base_url}/v1/{collection}?{urlencode(query)}"


def collection(name: str, items: list[dict], next_url: str | None) -> dict:
    return {name: items, "next": next_url}


def host(info: dict, base_url: str) -> dict:
    """One /v1/hosts item from ``ContainerManager.host_info()`` (§10 keys only)."""
    out = {k: info.get(k) for k in HOST_KEYS if k != "links"}
    out["links"] = links(base_url, "hosts", info["uuid"])
    return {k: out[k] for k in HOST_KEYS}


def service(node: str, availability_zone: str, now: datetime.datetime,
            started_at: datetime.datetime, report_count: int = 0, service_id: int = 1,
            state: str = "up", disabled: bool = False,
            disabled_reason: str | None = None) -> dict:
    return {
        "id": service_id, "host": node, "binary": "zun-compute", "state": state,
        "disabled": disabled, "disabled_reason": disabled_reason, "forced_down": False,
        "last_seen_up": zun_time(now), "report_count": report_count,
        "availability_zone": availability_zone, "created_at": zun_time(started_at),
        "updated_at": zun_time(now),
    }


FINISH_TIME_VERSION = v("1.33")


def action(act: Any, version: APIVersion) -> dict:
    out = {
        "action": act.action, "container_uuid": act.container_uuid,
        "request_id": act.request_id, "user_id": act.user_id, "project_id": act.project_id,
        "start_time": action_time(act.start_time),
    }
    if version >= FINISH_TIME_VERSION:
        out["finish_time"] = action_time(act.finish_time)
    out["message"] = act.message
    return out


def action_with_events(act: Any, version: APIVersion, show_traceback: bool) -> dict:
    out = action(act, version)
    out["events"] = []
    for e in act.events:
        event = {"event": e.event, "start_time": action_time(e.start_time),
                 "finish_time": action_time(e.finish_time), "result": e.result,
                 "traceback": e.traceback if show_traceback else None}
        details = getattr(e, "details", None)
        if details:
            # zund extra (clients ignore unknown keys): e.g. the placement decision
            # of compute__schedule_container — candidates, bids, winner, why
            event["details"] = details
        out["events"].append(event)
    return out


def discovery(base_url: str, min_version: str, max_version: str) -> dict:
    version = {"id": "v1", "status": "CURRENT", "min_version": min_version,
               "max_version": max_version,
               "links": [{"href": f"{base_url}/v1/", "rel": "self"}]}
    return {"name": "OpenStack Zun API",
            "description": "Zun is an OpenStack project which aims to provide containers "
                           "service (served by zund).",
            "versions": [version], "default_version": dict(version)}


V1_COLLECTIONS = ("services", "containers", "images", "networks", "hosts", "capsules",
                  "availability_zones", "quotas", "quota_classes", "registries")


def v1_root(base_url: str) -> dict:
    out: dict[str, Any] = {
        "id": "v1",
        "media_types": [{"base": "application/json",
                         "type": "application/vnd.openstack.zun.v1+json"}],
        "links": [{"href": f"{base_url}/v1/", "rel": "self"},
                  {"href": "https://docs.openstack.org/developer/zun/dev/api-spec-v1.html",
                   "type": "text/html", "rel": "describedby"}],
    }
    for coll in V1_COLLECTIONS:
        out[coll] = [{"href": f"{base_url}/v1/{coll}/", "rel": "self"},
                     {"href": f"{base_url}/{coll}/", "rel": "bookmark"}]
    return out
