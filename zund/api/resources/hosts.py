"""Hosts: every node the containers know, as Zun hosts (zun-api.md §10)."""

from __future__ import annotations

from zund.api import schemas, views
from zund.common import errors
from zund.api.pipeline import ApiRequest, paginate, route


class HostsResource:
    """Routes of ``/hosts``; mixed into ``zund.api.app.ZunAPI`` (uses ``ApiBase``)."""

    @route("/hosts", ["GET"], min_version="1.4")
    async def host_list(self, req: ApiRequest):
        query = schemas.parse_list_query(
            req.params, max_limit=self._config.max_limit, sort_keys=schemas.HOST_SORT_KEYS,
            default_sort_key="hostname")
        self._policy.authorize(req.ctx, "host:get_all")
        hosts = await self._containers.hosts()
        page = paginate(hosts, query, lambda h, k: h.get(k), lambda h: h["uuid"])
        items = [views.host(h, req.base_url) for h in page]
        next_url = views.next_link(req.base_url, "hosts", items, query.limit,
                                   query.sort_key, query.sort_dir)
        return views.collection("hosts", items, next_url)

    @route("/hosts/<ident>", ["GET"], min_version="1.4")
    async def host_show(self, req: ApiRequest, ident: str):
        self._policy.authorize(req.ctx, "host:get")
        for h in await self._containers.hosts():
            if ident in (h.get("uuid"), h.get("hostname")):
                return views.host(h, req.base_url)
        raise errors.HostNotFound(ident=ident)
