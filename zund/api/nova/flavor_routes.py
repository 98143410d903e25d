"""``/flavors``: list, detail, show and extra specs of the configured flavors.

Flavors are configuration (``[nova_api] flavors`` / ``flavors_file``), the same on
every node configured alike; any authenticated caller may read them.
"""

from __future__ import annotations

from zund.api import schemas
from zund.api.nova import views
from zund.api.nova.pipeline import ApiRequest, route
from zund.api.nova.servers import bad
from zund.common import errors


class FlavorsResource:
    """Routes of ``/flavors``; mixed into ``zund.api.nova.app.NovaAPI``."""

    def _flavor_page(self, req: ApiRequest, detail: bool) -> dict:
        p = req.params
        flavors = list(self._flavors)
        for key, attr in (("minRam", "ram"), ("minDisk", "disk")):
            if p.get(key) not in (None, ""):
                least = schemas.parse_int(p[key], key, minimum=0)
                flavors = [f for f in flavors if getattr(f, attr) >= least]
        if p.get("is_public") not in (None, "", "none", "None") and \
                str(p["is_public"]).lower() in ("false", "0", "no", "off"):
            flavors = []  # every configured flavor is public
        sort_key = p.get("sort_key") or "flavorid"
        keys = {"flavorid": "id", "id": "id", "name": "name", "memory_mb": "ram",
                "vcpus": "vcpus", "root_gb": "disk"}
        if sort_key not in keys:
            raise bad(f"Invalid input for query parameters sort_key. Value: {sort_key}.")
        sort_dir = p.get("sort_dir") or "asc"
        if sort_dir not in ("asc", "desc"):
            raise bad(f"Invalid input for query parameters sort_dir. Value: {sort_dir}.")
        flavors.sort(key=lambda f: (getattr(f, keys[sort_key]), f.id),
                     reverse=sort_dir == "desc")
        marker = p.get("marker")
        if marker not in (None, ""):
            ids = [f.id for f in flavors]
            if marker not in ids:
                raise bad(f"marker [{marker}] not found")
            flavors = flavors[ids.index(marker) + 1:]
        limit = p.get("limit")
        limit = self._config.max_limit if limit in (None, "") else min(
            schemas.parse_int(limit, "limit", minimum=0), self._config.max_limit)
        page = flavors[:limit]
        body = {"flavors": [views.flavor_view(f, req.base_url, req.version, detail)
                            for f in page]}
        if page and len(page) == limit:
            path = "flavors/detail" if detail else "flavors"
            body["flavors_links"] = [{"rel": "next", "href": (
                f"{req.base_url}/v2.1/{path}?limit={limit}&marker={page[-1].id}")}]
        return body

    @route("/flavors", ["GET"])
    async def flavor_list(self, req: ApiRequest):
        return self._flavor_page(req, detail=False)

    @route("/flavors/detail", ["GET"])
    async def flavor_list_detail(self, req: ApiRequest):
        return self._flavor_page(req, detail=True)

    def _flavor(self, ident: str):
        flavor = next((f for f in self._flavors if f.id == ident), None)
        if flavor is None:
            raise errors.ResourceNotFound(f"Flavor {ident} could not be found.")
        return flavor

    @route("/flavors/<ident>", ["GET"])
    async def flavor_show(self, req: ApiRequest, ident: str):
        return {"flavor": views.flavor_view(self._flavor(ident), req.base_url, req.version,
                                            detail=True)}

    @route("/flavors/<ident>/os-extra_specs", ["GET"])
    async def flavor_extra_specs(self, req: ApiRequest, ident: str):
        return {"extra_specs": dict(self._flavor(ident).extra_specs)}

    @route("/flavors/<ident>/os-extra_specs/<key>", ["GET"])
    async def flavor_extra_spec(self, req: ApiRequest, ident: str, key: str):
        specs = self._flavor(ident).extra_specs
        if key not in specs:
            raise errors.ResourceNotFound(
                f"Flavor {ident} has no extra specs with key {key}.")
        return {key: specs[key]}

