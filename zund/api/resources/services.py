"""Services and availability zones: one zun-compute service per node.

``PUT /v1/services/{enable,disable,force_down}`` (Zun's bodies: ``host``,
``binary``, and ``disabled_reason`` / ``forced_down``) mark a node from any
node, through ``zund.cluster.healer.Healer.set_service_state``: disable drains
it (gossiped ``draining``: it stops winning bids, its ``auto_heal`` containers
move one at a time, progress in ``disabled_reason``); enable reverses it;
force_down makes every node treat it as dead at once (its ``auto_heal``
containers heal). Admin only (``zun-service:update``).
"""

from __future__ import annotations

from zund.api import schemas, views
from zund.api.pipeline import ApiRequest, paginate, route
from zund.common import errors

BINARY = "zun-compute"


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
        admin = self._service_admin
        for i, svc in enumerate(listed, start=1):
            local = svc.host == self._config.node
            changed = svc.changed_at or now
            marks = admin.state_of(svc.host) if admin is not None else {}
            view = views.service(
                svc.host, svc.availability_zone,
                now if svc.state == "up" else changed,
                self._started_at if local else changed,
                report_count=reports if local else 0, service_id=i, state=svc.state,
                disabled=bool(marks.get("disabled")),
                disabled_reason=marks.get("disabled_reason"))
            view["forced_down"] = bool(marks.get("forced_down"))
            services.append(view)
        return {"services": services}

    @route("/services/<action>", ["PUT"])
    async def service_update(self, req: ApiRequest, action: str):
        self._policy.authorize(req.ctx, "zun-service:update")
        if action not in ("enable", "disable", "force_down"):
            raise errors.InvalidInput(field="action", reason=f"unknown action {action}")
        if self._service_admin is None:
            raise errors.NotImplementedYet(what="Service updates")
        # zunclient sends these as query parameters; a JSON body works too
        body = req.params
        host, binary = body.get("host"), body.get("binary", BINARY)
        if not isinstance(host, str) or not host:
            raise errors.InvalidInput(field="host", reason="a host name is required")
        if binary != BINARY:
            raise errors.InvalidInput(field="binary", reason=f"only {BINARY} is served")
        admin = self._service_admin
        if action == "enable":
            state = await admin.set_service_state(host, disabled=False)
            out = {"disabled": state["disabled"]}
        elif action == "disable":
            reason = body.get("disabled_reason")
            if reason is not None and not isinstance(reason, str):
                raise errors.InvalidInput(field="disabled_reason", reason="expected a string")
            state = await admin.set_service_state(host, disabled=True, reason=reason)
            out = {"disabled": state["disabled"], "disabled_reason": state["disabled_reason"]}
        else:
            forced = schemas.parse_bool(body.get("forced_down", True), "forced_down")
            state = await admin.set_service_state(host, forced_down=forced)
            out = {"forced_down": state["forced_down"]}
        return {"service": {"host": host, "binary": BINARY, **out}}

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
