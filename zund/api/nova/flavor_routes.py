"""``/flavors``: list, detail, show, extra specs and, for administrators, flavor
create/delete, extra spec writes and the access list of private flavors.

Two sources (``zund.cluster.flavors.FlavorService``): the configured flavors
(``[nova_api] flavors`` / ``flavors_file``, read-only defaults, the same on every
node configured alike) and flavors made through this API, replicated on three
nodes. Any authenticated caller may read the public flavors; a private flavor is
seen by administrators and the projects on its access list. Writes need Nova's
``os_compute_api:os-flavor-*`` rules (administrators by default).
"""

from __future__ import annotations

import uuid as _uuid

from zund.api import schemas
from zund.api.microversions import v
from zund.api.nova import views
from zund.api.nova.flavors import find_flavor
from zund.api.nova.pipeline import ApiRequest, Reply, route
from zund.api.nova.servers import bad
from zund.common import errors
from zund.flavors import ID_RE, MAX_EXTRA_SPECS, MAX_PROJECTS, MAX_SPEC_LEN, RUNTIME_SPEC, Flavor

_CREATE_KEYS = frozenset({"name", "ram", "vcpus", "disk", "id", "OS-FLV-EXT-DATA:ephemeral",
                          "swap", "rxtx_factor", "os-flavor-access:is_public",
                          "description"})
_SPEC_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                            "0123456789_-.: /")
_INT_MAX = 2 ** 31 - 1


def _count(s: dict, key: str, minimum: int, default=None) -> int:
    """Nova's flavor numbers: an integer or a string of one, within bounds."""
    value = s.get(key, default)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not \
            minimum <= value <= _INT_MAX:
        raise bad(f"Invalid input for field/attribute {key}. Value: {value!r}. "
                  f"An integer from {minimum} to {_INT_MAX} is required.")
    return value


def _spec_pairs(specs) -> dict:
    """Extra specs as Nova accepts them: keys of [A-Za-z0-9_-.: /], values strings
    (numbers and booleans become strings), both 1-255 characters."""
    if not isinstance(specs, dict) or not specs or len(specs) > MAX_EXTRA_SPECS:
        raise bad("Invalid input for field/attribute extra_specs: a map of 1 to "
                  f"{MAX_EXTRA_SPECS} keys.")
    out = {}
    for key, value in specs.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_SPEC_LEN \
                or set(key) - _SPEC_KEY_CHARS:
            raise bad(f"Invalid input for field/attribute extra_specs. Key {key!r}: 1-255 "
                      "of letters, digits and _-.: /")
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, (int, float)):
            value = str(value)
        if not isinstance(value, str) or len(value) > MAX_SPEC_LEN:
            raise bad(f"Invalid input for field/attribute extra_specs. Value of {key}: a "
                      "string of up to 255 characters.")
        if key == RUNTIME_SPEC and not value:
            raise bad(f"Invalid input for field/attribute extra_specs. {RUNTIME_SPEC} "
                      "names a runtime of the nodes (e.g. microvm).")
        out[key] = value
    return out


def _public_filter(value) -> bool | None:
    """``is_public``: absent/true → public (+ the caller's private ones), false →
    private only, ``none`` → every flavor the caller may see."""
    if value in (None, ""):
        return True
    text = str(value).lower()
    if text == "none":
        return None
    if text in ("true", "1", "yes", "on", "t", "y"):
        return True
    if text in ("false", "0", "no", "off", "f", "n"):
        return False
    raise bad(f"Invalid is_public filter [{value}]")


class FlavorsResource:
    """Routes of ``/flavors``; mixed into ``zund.api.nova.app.NovaAPI``."""

    def _flavor_admin(self, req: ApiRequest) -> bool:
        return self._policy.check(req.ctx, "context_is_admin")

    async def _visible_flavors(self, req: ApiRequest) -> tuple:
        """Every flavor the caller may see (configured ones need no peer call)."""
        admin = self._flavor_admin(req)
        return tuple(f for f in await self._flavor_store.all()
                     if f.visible_to(req.ctx.project_id, admin))

    async def _usable_flavor(self, req: ApiRequest, ref: str) -> Flavor | None:
        """The flavor a server create names: configured ones first (no peer call)."""
        found = find_flavor(self._flavors, ref)
        if found is not None:
            return found
        return find_flavor(await self._visible_flavors(req), ref)

    async def _flavor_page(self, req: ApiRequest, detail: bool) -> dict:
        p = req.params
        public = _public_filter(p.get("is_public"))
        admin = self._flavor_admin(req)
        flavors = list(await self._visible_flavors(req))
        if public is True:
            flavors = [f for f in flavors if f.is_public or not admin]
        elif public is False:
            flavors = [f for f in flavors if not f.is_public]
        for key, attr in (("minRam", "ram"), ("minDisk", "disk")):
            if p.get(key) not in (None, ""):
                least = schemas.parse_int(p[key], key, minimum=0)
                flavors = [f for f in flavors if getattr(f, attr) >= least]
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
        return await self._flavor_page(req, detail=False)

    @route("/flavors/detail", ["GET"])
    async def flavor_list_detail(self, req: ApiRequest):
        return await self._flavor_page(req, detail=True)

    async def _flavor(self, req: ApiRequest, ident: str) -> Flavor:
        for f in self._flavors:
            if f.id == ident:
                return f
        flavor = next((f for f in await self._visible_flavors(req) if f.id == ident), None)
        if flavor is None:
            raise errors.ResourceNotFound(f"Flavor {ident} could not be found.")
        return flavor

    @route("/flavors/<ident>", ["GET"])
    async def flavor_show(self, req: ApiRequest, ident: str):
        return {"flavor": views.flavor_view(await self._flavor(req, ident), req.base_url,
                                            req.version, detail=True)}

    @route("/flavors/<ident>/os-extra_specs", ["GET"])
    async def flavor_extra_specs(self, req: ApiRequest, ident: str):
        return {"extra_specs": dict((await self._flavor(req, ident)).extra_specs)}

    @route("/flavors/<ident>/os-extra_specs/<key>", ["GET"])
    async def flavor_extra_spec(self, req: ApiRequest, ident: str, key: str):
        specs = (await self._flavor(req, ident)).extra_specs
        if key not in specs:
            raise errors.ResourceNotFound(
                f"Flavor {ident} has no extra specs with key {key}.")
        return {key: specs[key]}

    # -- administrators: flavor-manage, extra specs, flavor access ----------------------

    @route("/flavors", ["POST"])
    async def flavor_create(self, req: ApiRequest):
        self._policy.authorize(req.ctx, "os_compute_api:os-flavor-manage:create")
        body = req.body
        if not isinstance(body, dict) or not isinstance(body.get("flavor"), dict):
            raise bad("Invalid input for field/attribute flavor. 'flavor' is a required "
                      "property")
        s = body["flavor"]
        unknown = sorted(set(s) - _CREATE_KEYS)
        if unknown:
            raise bad("Invalid input for field/attribute flavor. Additional properties are "
                      f"not allowed ({', '.join(repr(k) for k in unknown)} were unexpected)")
        name = s.get("name")
        if not isinstance(name, str) or not ID_RE.match(name):
            raise bad("Invalid input for field/attribute name. 1-255 of letters, digits "
                      "and _.:- (zund flavor names carry no spaces).")
        fid = s.get("id")
        if fid in (None, "auto"):
            fid = str(_uuid.UUID(int=self._rng.getrandbits(128), version=4))
        if not isinstance(fid, str) or not ID_RE.match(fid):
            raise bad("Invalid input for field/attribute id. 1-255 of letters, digits "
                      "and _.:-")
        vcpus, ram = _count(s, "vcpus", 1), _count(s, "ram", 1)
        disk = _count(s, "disk", 0, default=0)
        for key in ("OS-FLV-EXT-DATA:ephemeral", "swap"):
            if s.get(key) not in (None, "", 0, "0"):
                raise bad(f"Invalid input for field/attribute {key}: zund containers have "
                          "no ephemeral or swap disks; use 0.")
        rxtx = s.get("rxtx_factor", 1.0)
        if rxtx not in (None, 1, 1.0, "1", "1.0"):
            raise bad("Invalid input for field/attribute rxtx_factor: zund supports 1.0 "
                      "only.")
        public = s.get("os-flavor-access:is_public", True)
        if public is None:
            public = True
        if not isinstance(public, bool):
            raise bad("Invalid input for field/attribute os-flavor-access:is_public: a "
                      "boolean.")
        description = s.get("description")
        if description is not None and (not isinstance(description, str)
                                        or len(description) > 65535):
            raise bad("Invalid input for field/attribute description: a string of up to "
                      "65535 characters.")
        if description is not None and req.version < v("2.55"):
            raise bad("Invalid input for field/attribute flavor. Additional properties are "
                      "not allowed ('description' was unexpected)")
        made = await self._flavor_store.create(Flavor(
            id=fid, name=name, vcpus=vcpus, ram=ram, disk=disk, description=description,
            is_public=public))
        return {"flavor": views.flavor_view(made, req.base_url, req.version, detail=True)}

    @route("/flavors/<ident>", ["DELETE"])
    async def flavor_delete(self, req: ApiRequest, ident: str):
        self._policy.authorize(req.ctx, "os_compute_api:os-flavor-manage:delete")
        await self._flavor_store.delete(ident)
        return Reply(202)

    @route("/flavors/<ident>/os-extra_specs", ["POST"])
    async def flavor_extra_specs_create(self, req: ApiRequest, ident: str):
        self._policy.authorize(req.ctx, "os_compute_api:os-flavor-extra-specs:create")
        body = req.body
        if not isinstance(body, dict) or set(body) != {"extra_specs"}:
            raise bad("Invalid input for field/attribute extra_specs. 'extra_specs' is a "
                      "required property")
        specs = _spec_pairs(body["extra_specs"])
        await self._flavor_store.set_specs(ident, specs)
        return {"extra_specs": specs}

    @route("/flavors/<ident>/os-extra_specs/<key>", ["PUT"])
    async def flavor_extra_spec_update(self, req: ApiRequest, ident: str, key: str):
        self._policy.authorize(req.ctx, "os_compute_api:os-flavor-extra-specs:update")
        body = req.body
        if not isinstance(body, dict) or len(body) != 1:
            raise bad("Malformed request body: one key, the one in the URL.")
        if key not in body:
            raise bad("Request body and URI mismatch")
        specs = _spec_pairs(body)
        await self._flavor_store.set_specs(ident, specs)
        return specs

    @route("/flavors/<ident>/os-extra_specs/<key>", ["DELETE"])
    async def flavor_extra_spec_delete(self, req: ApiRequest, ident: str, key: str):
        self._policy.authorize(req.ctx, "os_compute_api:os-flavor-extra-specs:delete")
        await self._flavor_store.unset_spec(ident, key)
        return Reply(200)

    @route("/flavors/<ident>/os-flavor-access", ["GET"])
    async def flavor_access_list(self, req: ApiRequest, ident: str):
        self._policy.authorize(req.ctx, "os_compute_api:os-flavor-access")
        flavor = await self._flavor(req, ident)
        if flavor.is_public:
            raise errors.ResourceNotFound("Access list not available for public flavors.")
        return _access(flavor)

    @route("/flavors/<ident>/action", ["POST"])
    async def flavor_action(self, req: ApiRequest, ident: str):
        body = req.body
        if not isinstance(body, dict) or len(body) != 1:
            raise bad("Malformed request body: one action, addTenantAccess or "
                      "removeTenantAccess.")
        (action, arg), = body.items()
        if action not in ("addTenantAccess", "removeTenantAccess"):
            raise bad(f"There is no such action: {action}")
        rule = "add_tenant_access" if action == "addTenantAccess" else "remove_tenant_access"
        self._policy.authorize(req.ctx, f"os_compute_api:os-flavor-access:{rule}")
        tenant = arg.get("tenant") if isinstance(arg, dict) else None
        if not isinstance(tenant, str) or not 1 <= len(tenant) <= 255:
            raise bad(f"Invalid input for field/attribute {action}. 'tenant' is a "
                      "required property")
        current = await self._flavor(req, ident)
        if action == "addTenantAccess":
            if len(current.projects) >= MAX_PROJECTS:
                raise bad(f"Flavor {ident} already has {MAX_PROJECTS} projects.")
            flavor = await self._flavor_store.add_access(ident, tenant)
        else:
            flavor = await self._flavor_store.remove_access(ident, tenant)
        return _access(flavor)


def _access(flavor: Flavor) -> dict:
    return {"flavor_access": [{"flavor_id": flavor.id, "tenant_id": p}
                              for p in flavor.projects]}
