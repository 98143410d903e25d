"""Version discovery (``GET /``, ``GET /v2.1``), ``/os-availability-zone`` and
``/limits`` (absolute limits from zund's quotas, ``zund.cluster.quota``)."""

from __future__ import annotations

from zund.api.nova import microversions as nova_versions
from zund.api.nova import views
from zund.api.nova.pipeline import ApiRequest, route

_UPDATED = "2013-07-23T11:33:21Z"

#: zund quota resource -> (Nova max key, Nova used key)
_QUOTA_KEYS = {"containers": ("maxTotalInstances", "totalInstancesUsed"),
               "cpu": ("maxTotalCores", "totalCoresUsed"),
               "memory": ("maxTotalRAMSize", "totalRAMUsed")}


def _version_doc(base_url: str) -> dict:
    return {"id": "v2.1", "status": "CURRENT", "version": str(nova_versions.MAX_VERSION),
            "min_version": str(nova_versions.MIN_VERSION), "updated": _UPDATED,
            "links": [{"rel": "self", "href": f"{base_url}/v2.1/"},
                      {"rel": "describedby", "type": "text/html",
                       "href": "https://docs.openstack.org/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;version=2.1"}]}


class MiscResource:
    """Discovery, availability zones and limits; mixed into ``NovaAPI``."""

    @route("/", ["GET"], versioned=False, public=True)
    async def versions(self, req: ApiRequest):
        doc = _version_doc(req.base_url)
        return {"versions": [{k: doc[k] for k in ("id", "status", "version", "min_version",
                                                  "updated", "links")}]}

    @route("/v2.1", ["GET"], versioned=False, public=True)
    async def version_v21(self, req: ApiRequest):
        return {"version": _version_doc(req.base_url)}

    @route("/os-availability-zone", ["GET"])
    async def availability_zones(self, req: ApiRequest):
        zones = sorted({s.availability_zone for s in await self._containers.services()})
        return {"availabilityZoneInfo": [
            {"zoneName": z, "zoneState": {"available": True}, "hosts": None}
            for z in zones]}

    @route("/os-availability-zone/detail", ["GET"])
    async def availability_zones_detail(self, req: ApiRequest):
        self._policy.authorize(req.ctx, "host:get_all")
        by_zone: dict[str, dict] = {}
        for s in await self._containers.services():
            by_zone.setdefault(s.availability_zone, {})[s.host] = {"nova-compute": {
                "available": s.state == "up", "active": True,
                "updated_at": views.isotime(s.changed_at)}}
        return {"availabilityZoneInfo": [
            {"zoneName": z, "zoneState": {"available": any(
                h["nova-compute"]["available"] for h in hosts.values())}, "hosts": hosts}
            for z, hosts in sorted(by_zone.items())]}

    @route("/limits", ["GET"])
    async def limits(self, req: ApiRequest):
        ctx = req.ctx
        project = ctx.project_id
        wanted = req.params.get("tenant_id")
        if wanted not in (None, "") and wanted != project:
            self._policy.authorize(ctx, "quota:get", {"project_id": str(wanted)})
            project = str(wanted)
        if self._quotas is not None:
            limits = await self._quotas.get(project)
            usage = await self._quotas.usage(project)
        else:
            limits = {}
            usage = {"containers": 0, "cpu": 0, "memory": 0}
            for rec in (await self._containers.list(ctx, False)).records:
                usage["containers"] += 1
                usage["cpu"] += rec.cpu or 0
                usage["memory"] += rec.memory or 0
        absolute = {}
        for resource, (max_key, used_key) in _QUOTA_KEYS.items():
            absolute[max_key] = int(limits.get(resource, -1))
            used = usage.get(resource, 0) or 0
            absolute[used_key] = int(used) if float(used).is_integer() else float(used)
        absolute.update({"maxServerMeta": 128, "maxImageMeta": 128, "maxTotalKeypairs": 0,
                         "maxServerGroups": 0, "maxServerGroupMembers": 0,
                         "totalServerGroupsUsed": 0})
        if req.version < nova_versions.APIVersion(2, 57):
            absolute.update({"maxPersonality": 0, "maxPersonalitySize": 0})
        if req.version < nova_versions.APIVersion(2, 36):
            absolute.update({"maxTotalFloatingIps": 0, "maxSecurityGroups": 1,
                             "maxSecurityGroupRules": 0, "totalFloatingIpsUsed": 0,
                             "totalSecurityGroupsUsed": 0})
        return {"limits": {"rate": [], "absolute": absolute}}

