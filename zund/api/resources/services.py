"""Services and availability zones: one zun-compute service per node."""

from __future__ import annotations

from zund.api import schemas, views
from zund.api.pipeline import ApiRequest, paginate, route


class ServicesResource:
    """Routes of ``/services`` and ``/availability_zones``; mixed into
    ``zund.api.app.ZunAPI`` (uses ``ApiBase``)."""

    @route("/services", ["GET"])
    async def service_list(self, req: ApiRequest):
        self._policy.authorize(req.ctx, "zun-service:get_all")
        now = self._now()
        reports = int((now - self._started_at).total_seconds() // 10)
        services = []
        listed = sorted(await self._containers.services(), key=lambda x: x.host)
        for i, svc in enumerate(listed, start=1):
            local = svc.host == self._config.node
            changed = svc.changed_at or now
            services.append(views.service(
                svc.host, svc.availability_zone,
                now if svc.state == "up" else changed,
                self._started_at if local else changed,
                report_count=reports if local else 0, service_id=i, state=svc.state))
        return {"services": services}

    @route("/availability_zones", ["GET"])
    async def availability_zone_list(self, req: ApiRequest):
        query = schemas.parse_list_query(
            req.params, max_limit=self._config.max_limit,
            sort_keys=("availability_zone",), default_sort_key="availability_zone")
        self._policy.authorize(req.ctx, "availability_zones:get_all")
        names = sorted({svc.availability_zone for svc in await self._containers.services()})
        zones = [{"availability_zone": z} for z in names]
        page = paginate(zones, query, lambda z, k: z.get(k), lambda z: z["availability_zone"])
        return views.collection("availability_zones", page, None)
