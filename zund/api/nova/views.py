"""How a zund container looks as a Nova server (pure).

Status mapping (zund status, task_state) -> Nova ``status``,
``OS-EXT-STS:vm_state``, ``OS-EXT-STS:task_state`` and ``OS-EXT-STS:power_state``.
A container that exists but does not run (Created, Stopped) is a SHUTOFF server;
one being made (Creating: image pull, create, start) is BUILD; a reboot in flight
shows REBOOT, a rebuild REBUILD, as Nova derives them from its task state.
"""

from __future__ import annotations

import datetime
import hashlib

from zund.api.microversions import APIVersion, v
from zund.api.nova.flavors import Flavor
from zund.compute import states

# Nova's power states (nova/compute/power_state.py values)
NOSTATE, RUNNING, PAUSED, SHUTDOWN, CRASHED = 0, 1, 3, 4, 6

#: zund status -> (Nova status, vm_state, power_state)
_BY_STATUS = {
    states.CREATING: ("BUILD", "building", NOSTATE),
    states.CREATED: ("SHUTOFF", "stopped", SHUTDOWN),
    states.RUNNING: ("ACTIVE", "active", RUNNING),
    states.STOPPED: ("SHUTOFF", "stopped", SHUTDOWN),
    states.PAUSED: ("PAUSED", "paused", PAUSED),
    states.RESTARTING: ("REBOOT", "active", RUNNING),
    states.REBUILDING: ("REBUILD", "active", NOSTATE),
    states.DELETING: ("SHUTOFF", "stopped", SHUTDOWN),
    states.DELETED: ("DELETED", "deleted", NOSTATE),
    states.ERROR: ("ERROR", "error", NOSTATE),
    states.DEAD: ("ERROR", "error", CRASHED),
    states.UNKNOWN: ("UNKNOWN", None, NOSTATE),
}

#: zund task_state -> Nova task_state
_TASKS = {
    "image_pulling": "spawning", "container_creating": "spawning",
    "container_starting": "powering-on", "container_stopping": "powering-off",
    "container_killing": "powering-off", "container_rebooting": "rebooting",
    "container_pausing": "pausing", "container_unpausing": "unpausing",
    "container_deleting": "deleting", "container_rebuilding": "rebuilding",
}

#: Nova status names a ``status`` filter may use
NOVA_STATUSES = frozenset(s for s, _, _ in _BY_STATUS.values())


def server_state(status: str, task_state: str | None) -> dict:
    nova_status, vm_state, power = _BY_STATUS.get(status, ("UNKNOWN", None, NOSTATE))
    task = _TASKS.get(task_state) if task_state else None
    if status == states.CREATING and task is None:
        task = "scheduling"
    if task == "rebooting" and vm_state == "active":
        nova_status = "REBOOT"
    elif task == "rebuilding":
        nova_status = "REBUILD"
    return {"status": nova_status, "OS-EXT-STS:vm_state": vm_state,
            "OS-EXT-STS:task_state": task, "OS-EXT-STS:power_state": power}


def isotime(value: datetime.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def host_id(project_id: str, host: str | None) -> str:
    """Nova's opaque hostId: sha224(project + host), '' when not placed."""
    if not host:
        return ""
    return hashlib.sha224((project_id + host).encode("utf-8")).hexdigest()


def links(base_url: str, collection: str, ident: str) -> list:
    return [{"rel": "self", "href": f"{base_url}/v2.1/{collection}/{ident}"},
            {"rel": "bookmark", "href": f"{base_url}/{collection}/{ident}"}]


def addresses(zun_addresses: dict) -> dict:
    out = {}
    for net, addrs in (zun_addresses or {}).items():
        out[net] = [{"addr": a.get("addr"), "version": a.get("version", 4),
                     "OS-EXT-IPS:type": "fixed",
                     "OS-EXT-IPS-MAC:mac_addr": a.get("mac_addr") or a.get("mac")}
                    for a in addrs if isinstance(a, dict)]
    return out


def flavor_brief(flavor: Flavor, base_url: str) -> dict:
    return {"id": flavor.id, "links": [{"rel": "bookmark",
                                        "href": f"{base_url}/flavors/{flavor.id}"}]}


def flavor_embedded(flavor: Flavor) -> dict:
    """The server's flavor from 2.47: sizes and extra specs, no id."""
    return {"vcpus": flavor.vcpus, "ram": flavor.ram, "disk": flavor.disk, "ephemeral": 0,
            "swap": 0, "original_name": flavor.name, "extra_specs": dict(flavor.extra_specs)}


def flavor_view(flavor: Flavor, base_url: str, version: APIVersion, detail: bool) -> dict:
    out = {"id": flavor.id, "name": flavor.name,
           "links": links(base_url, "flavors", flavor.id)}
    if version >= v("2.55"):
        out["description"] = flavor.description
    if not detail:
        return out
    out.update({"vcpus": flavor.vcpus, "ram": flavor.ram, "disk": flavor.disk,
                "OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": False,
                "os-flavor-access:is_public": flavor.is_public, "rxtx_factor": 1.0,
                "swap": 0 if version >= v("2.75") else ""})
    if version >= v("2.61"):
        out["extra_specs"] = dict(flavor.extra_specs)
    return out


def server_brief(rec, base_url: str) -> dict:
    return {"id": rec.uuid, "name": rec.name, "links": links(base_url, "servers", rec.uuid)}


def server(rec, flavor: Flavor, base_url: str, version: APIVersion, *,
           admin: bool) -> dict:
    """The detailed server body of ``rec`` at ``version``; ``admin`` adds the
    OS-EXT-SRV-ATTR host fields."""
    started = rec.started_at
    out = {
        "id": rec.uuid,
        "name": rec.name,
        "tenant_id": rec.project_id,
        "user_id": rec.user_id,
        "metadata": {str(k): str(val) for k, val in (rec.labels or {}).items()},
        "hostId": host_id(rec.project_id, rec.host),
        "image": {"id": rec.image, "links": [{"rel": "bookmark",
                                               "href": f"{base_url}/images/{rec.image}"}]},
        "created": isotime(rec.created_at),
        "updated": isotime(rec.updated_at or rec.created_at),
        "addresses": addresses(rec.addresses),
        "accessIPv4": "",
        "accessIPv6": "",
        "links": links(base_url, "servers", rec.uuid),
        "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": rec.availability_zone or "",
        "config_drive": "",
        "key_name": None,
        "OS-SRV-USG:launched_at": isotime(started),
        "OS-SRV-USG:terminated_at": None,
        "os-extended-volumes:volumes_attached": [],
        "security_groups": [{"name": "default"}],
        "progress": 0,
    }
    out.update(server_state(rec.status, rec.task_state))
    if out["status"] == "ERROR":
        out["fault"] = {"code": 500, "message": rec.status_reason or "Error",
                        "created": isotime(rec.updated_at or rec.created_at)}
    out["flavor"] = (flavor_embedded(flavor) if version >= v("2.47")
                     else flavor_brief(flavor, base_url))
    if admin:
        out.update({"OS-EXT-SRV-ATTR:host": rec.host,
                    "OS-EXT-SRV-ATTR:hypervisor_hostname": rec.host,
                    "OS-EXT-SRV-ATTR:instance_name": f"zund-{rec.uuid}"})
    if version >= v("2.3") and admin:
        out.update({"OS-EXT-SRV-ATTR:hostname": rec.hostname or rec.name,
                    "OS-EXT-SRV-ATTR:launch_index": 0, "OS-EXT-SRV-ATTR:kernel_id": "",
                    "OS-EXT-SRV-ATTR:ramdisk_id": "", "OS-EXT-SRV-ATTR:reservation_id": "",
                    "OS-EXT-SRV-ATTR:root_device_name": None,
                    "OS-EXT-SRV-ATTR:user_data": None})
    if version >= v("2.9"):
        out["locked"] = False
    if version >= v("2.19"):
        out["description"] = None
    if version >= v("2.26"):
        out["tags"] = []
    if version >= v("2.63"):
        out["trusted_image_certificates"] = None
    if version >= v("2.73"):
        out["locked_reason"] = None
    if version >= v("2.96"):
        out["pinned_availability_zone"] = None
    if version >= v("2.100"):
        out["scheduler_hints"] = {}
    return out
