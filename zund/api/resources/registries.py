"""Private registries (Zun microversion 1.30): ``/v1/registries`` create (202),
list (``all_projects`` for admins), show, update (PATCH), delete (204), each by
uuid or name. Bodies are Zun's (``{"registry": {...}}``); the password is
masked (``***``) in every output. The records live in the cluster
(``zund.cluster.registries.RegistryService``), not in this node."""

from __future__ import annotations

from zund.api import schemas, views
from zund.api.pipeline import ApiRequest, Reply, paginate, route
from zund.common import errors
from zund.registries import MASK

_MIN = "1.30"
REGISTRY_KEYS = ("uuid", "user_id", "project_id", "name", "domain", "username", "password")
REGISTRY_SORT_KEYS = ("uuid", "name", "domain", "username", "project_id", "user_id",
                      "created_at", "id")
_FIELDS = ("name", "domain", "username", "password")
_FILTERS = ("name", "domain", "username", "project_id", "user_id")


def registry_view(entry, base_url: str) -> dict:
    """Zun's registry keys; the password is never returned."""
    out = {k: getattr(entry, k) for k in REGISTRY_KEYS}
    out["password"] = MASK
    out["links"] = [{"href": f"{base_url}/v1/registries/{entry.uuid}", "rel": "self"},
                    {"href": f"{base_url}/registries/{entry.uuid}", "rel": "bookmark"}]
    return out


def validate_registry(body, *, create: bool) -> dict:
    """``{"registry": {name?, domain, username?, password?}}`` -> the fields given;
    400 naming the field otherwise."""
    if not isinstance(body, dict):
        raise schemas.invalid("body", "expected a JSON object")
    schemas.check_unknown(body, ("registry",))
    fields = body.get("registry")
    if not isinstance(fields, dict):
        raise schemas.invalid("registry", "expected an object")
    schemas.check_unknown(fields, _FIELDS)
    if create and fields.get("domain") is None:
        raise schemas.invalid("domain", "is required")
    if not create and not fields:
        raise schemas.invalid("registry", "nothing to update")
    out = {}
    for k, value in fields.items():
        if value is None and k != "domain":
            out[k] = None
            continue
        if not isinstance(value, str):
            raise schemas.invalid(k, "must be a string")
        if len(value) > 255:
            raise schemas.invalid(k, "must be at most 255 characters")
        if k in ("name", "domain") and (len(value) < 2 or value != value.strip()
                                        or any(c.isspace() for c in value)):
            raise schemas.invalid(k, "must be 2-255 characters without spaces")
        out[k] = value
    return out


class RegistriesResource:
    """Routes of ``/registries``; mixed into ``zund.api.app.ZunAPI`` (uses
    ``ApiBase``: ``self._registries`` is the node's RegistryService)."""

    def _registry_service(self):
        if self._registries is None:
            raise errors.NotImplementedYet(what="Registries")
        return self._registries

    def _scope(self, req: ApiRequest) -> bool:
        """Admins see every project's registries by uuid or name, as in Zun."""
        return self._policy.check(req.ctx, "registry:get_all_all_projects")

    @route("/registries", ["POST"], min_version=_MIN)
    async def registry_create(self, req: ApiRequest):
        self._policy.authorize(req.ctx, "registry:create")
        fields = validate_registry(req.body, create=True)
        entry = await self._registry_service().create(
            req.ctx, fields.get("name"), fields["domain"], fields.get("username"),
            fields.get("password"))
        return Reply(202, {"registry": registry_view(entry, req.base_url)},
                     {"Location": f"{req.base_url}/v1/registries/{entry.uuid}"})

    @route("/registries", ["GET"], min_version=_MIN)
    async def registry_list(self, req: ApiRequest):
        query = schemas.parse_list_query(req.params, max_limit=self._config.max_limit,
                                         sort_keys=REGISTRY_SORT_KEYS,
                                         default_sort_key="created_at", filters=_FILTERS,
                                         extra=("all_projects",))
        self._policy.authorize(req.ctx, "registry:get_all")
        if query.all_projects:
            self._policy.authorize(req.ctx, "registry:get_all_all_projects")
        entries = await self._registry_service().list(req.ctx, query.all_projects)
        entries = [e for e in entries
                   if all(getattr(e, k) == v for k, v in query.filters.items())]
        sort_key = "created_at" if query.sort_key == "id" else query.sort_key
        page = paginate(entries, query, lambda e, k: getattr(e, sort_key), lambda e: e.uuid)
        items = [registry_view(e, req.base_url) for e in page]
        next_url = views.next_link(req.base_url, "registries", items, query.limit,
                                   query.sort_key, query.sort_dir)
        return views.collection("registries", items, next_url)

    @route("/registries/<ident>", ["GET"], min_version=_MIN)
    async def registry_show(self, req: ApiRequest, ident: str):
        entry = await self._registry_service().get(req.ctx, ident, self._scope(req))
        self._policy.authorize(req.ctx, "registry:get_one", _target(entry))
        return {"registry": registry_view(entry, req.base_url)}

    @route("/registries/<ident>", ["PATCH"], min_version=_MIN)
    async def registry_update(self, req: ApiRequest, ident: str):
        changes = validate_registry(req.body, create=False)
        service = self._registry_service()
        scope = self._scope(req)
        entry = await service.get(req.ctx, ident, scope)
        self._policy.authorize(req.ctx, "registry:update", _target(entry))
        entry = await service.update(req.ctx, entry.uuid, changes, scope)
        return {"registry": registry_view(entry, req.base_url)}

    @route("/registries/<ident>", ["DELETE"], min_version=_MIN)
    async def registry_delete(self, req: ApiRequest, ident: str):
        service = self._registry_service()
        scope = self._scope(req)
        entry = await service.get(req.ctx, ident, scope)
        self._policy.authorize(req.ctx, "registry:delete", _target(entry))
        await service.delete(req.ctx, entry.uuid, scope)
        return Reply(204)


def _target(entry) -> dict:
    return {"project_id": entry.project_id, "user_id": entry.user_id}
