"""Quotas and quota classes (Zun microversion 1.26).

``/v1/quotas/{project_id}``: GET (``usages=true``: ``{resource: {limit, in_use}}``),
PUT (admin), DELETE (admin: back to the defaults), ``/defaults``;
``/v1/quota_classes/{name}``: GET and PUT (admin). Resources: containers, cpu,
memory (MiB), disk (GiB); ``-1`` is unlimited. Policy rules and bodies are Zun's
(zun/api/controllers/v1/quotas.py, quota_classes.py). The values live in the
cluster (``zund.cluster.quota.QuotaService``), not in this node.
"""

from __future__ import annotations

from zund.api import schemas
from zund.api.pipeline import ApiRequest, Reply, route
from zund.common import errors

_MIN = "1.26"


class QuotasResource:
    """Routes of ``/quotas`` and ``/quota_classes``; mixed into ``zund.api.app.ZunAPI``
    (uses ``ApiBase``: ``self._quotas`` is the node's QuotaService)."""

    def _quota_service(self):
        if self._quotas is None:
            raise errors.NotImplementedYet(what="Quotas")
        return self._quotas

    @route("/quotas/<project_id>", ["GET"], min_version=_MIN)
    async def quota_show(self, req: ApiRequest, project_id: str):
        self._policy.authorize(req.ctx, "quota:get", {"project_id": project_id})
        quotas = self._quota_service()
        limits = await quotas.get(project_id)
        if not schemas.optional_bool(req.params, "usages", False):
            return limits
        used = await quotas.usage(project_id)
        return {r: {"limit": limits[r], "in_use": _number(used.get(r, 0))}
                for r in schemas.QUOTA_RESOURCES}

    @route("/quotas/<project_id>", ["PUT"], min_version=_MIN)
    async def quota_update(self, req: ApiRequest, project_id: str):
        self._policy.authorize(req.ctx, "quota:update", {"project_id": project_id})
        values = schemas.validate_quota_update(req.body)
        return await self._quota_service().update(project_id, values)

    @route("/quotas/<project_id>", ["DELETE"], min_version=_MIN)
    async def quota_delete(self, req: ApiRequest, project_id: str):
        self._policy.authorize(req.ctx, "quota:delete", {"project_id": project_id})
        await self._quota_service().delete(project_id)
        return Reply(204)

    @route("/quotas/<project_id>/defaults", ["GET"], min_version=_MIN)
    async def quota_defaults(self, req: ApiRequest, project_id: str):
        self._policy.authorize(req.ctx, "quota:get_default", {"project_id": project_id})
        return await self._quota_service().defaults()

    @route("/quota_classes/<name>", ["GET"], min_version=_MIN)
    async def quota_class_show(self, req: ApiRequest, name: str):
        self._policy.authorize(req.ctx, "quota_class:get")
        return await self._quota_service().get_class(name)

    @route("/quota_classes/<name>", ["PUT"], min_version=_MIN)
    async def quota_class_update(self, req: ApiRequest, name: str):
        self._policy.authorize(req.ctx, "quota_class:update")
        values = schemas.validate_quota_update(req.body)
        return await self._quota_service().update_class(name, values)


def _number(value):
    """Whole amounts as ints (cpu may be fractional)."""
    return int(value) if float(value).is_integer() else float(value)
