"""``/servers``: create, list (+detail), show, rename, delete and actions.

A server is a zund container: every call goes through ``IContainers`` with the
Zun API's policy rules (``container:create``, ``container:get_one`` …), so one
container has one set of permissions whichever API names it.
"""

from __future__ import annotations

import re
import uuid as _uuid
from typing import Any

from zund.api import schemas
from zund.api.microversions import v
from zund.api.nova import views
from zund.api.nova.flavors import flavor_of
from zund.api.nova.pipeline import ApiRequest, Reply, route
from zund.common import errors
from zund.compute.interface import ContainerRef
from zund.records import CreateRequest

#: keys of ``server`` in a create that zund understands or can ignore harmlessly
_CREATE_KEYS = frozenset({
    "name", "imageRef", "flavorRef", "metadata", "key_name", "security_groups", "networks",
    "availability_zone", "min_count", "max_count", "OS-DCF:diskConfig", "description",
    "return_reservation_id", "config_drive", "hostname", "block_device_mapping_v2",
})
_HARMLESS_SECURITY_GROUPS = ({"name": "default"},)
_MAX_METADATA = 128


def bad(message: str) -> errors.InvalidInput:
    """A 400 with Nova's plain message."""
    return errors.InvalidInput(message)


def _is_uuid(text: str) -> bool:
    try:
        return str(_uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


def _name_matcher(pattern: str):
    """Nova filters ``name`` by regular expression; zund supports the safe subset
    clients use (``^``, ``$``, ``.``, ``.*``), every other character literal, so
    a hostile pattern cannot make a list take exponential time."""
    if len(pattern) > 255:
        raise bad("Invalid filter field: name.")
    start = pattern.startswith("^")
    end = pattern.endswith("$") and not pattern.endswith("\\$")
    body = pattern[1 if start else 0:len(pattern) - (1 if end else 0)]
    out, i = [], 0
    while i < len(body):
        if body.startswith(".*", i):
            out.append(".*")
            i += 2
        elif body[i] == ".":
            out.append(".")
            i += 1
        else:
            out.append(re.escape(body[i]))
            i += 1
    rx = re.compile(("^" if start else "") + "".join(out) + ("$" if end else ""))
    return lambda name: bool(rx.search(name or ""))


class ServersResource:
    """Routes of ``/servers``; mixed into ``zund.api.nova.app.NovaAPI``."""

    def _is_admin_for(self, ctx, rec) -> bool:
        return self._policy.check(ctx, "container:get_one:host",
                                  {"project_id": rec.project_id, "user_id": rec.user_id})

    def _server_view(self, req: ApiRequest, rec) -> dict:
        flavor = flavor_of(self._flavor_store.cached(), rec.cpu, rec.memory, rec.disk,
                           rec.runtime)
        return views.server(rec, flavor, req.base_url, req.version,
                            admin=self._is_admin_for(req.ctx, rec))

    def _server_ref(self, req: ApiRequest, ident: str, rule: str, **kw) -> ContainerRef:
        # Nova names servers by id only; a name would be ambiguous across projects
        if not _is_uuid(ident):
            raise errors.ContainerNotFound(f"Instance {ident} could not be found.",
                                           ident=ident)
        ref = self._ref(req, ident, rule, **kw)
        # an admin reaches any project's server by id, as in Nova
        if self._policy.check(req.ctx, "container:get_one_all_projects"):
            ref = ContainerRef(ident=ref.ident, rule=ref.rule, all_projects=True,
                               extra_rules=ref.extra_rules)
        return ref

    async def _get(self, req: ApiRequest, ident: str, rule: str = "container:get_one"):
        try:
            return await self._containers.show(req.ctx, self._server_ref(req, ident, rule))
        except errors.NotFound as e:
            raise errors.ContainerNotFound(f"Instance {ident} could not be found.",
                                           ident=ident) from e

    # -- create ---------------------------------------------------------------------------

    async def _create_request(self, req: ApiRequest) -> CreateRequest:
        body = req.body
        if not isinstance(body, dict) or not isinstance(body.get("server"), dict):
            raise bad("Invalid input for field/attribute server. Value: None. "
                      "'server' is a required property")
        s: dict[str, Any] = body["server"]
        unknown = sorted(set(s) - _CREATE_KEYS)
        if unknown:
            raise bad("Invalid input for field/attribute server. Additional properties are "
                      f"not allowed ({', '.join(repr(k) for k in unknown)} were unexpected)")
        name = s.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad("Invalid input for field/attribute name. 'name' is a required property")
        try:
            schemas.validate_name(name)
        except errors.InvalidInput as e:
            raise bad(f"Invalid input for field/attribute name. {e.msg}") from e
        flavor_ref = s.get("flavorRef")
        if not isinstance(flavor_ref, (str, int)) or isinstance(flavor_ref, bool) \
                or not str(flavor_ref):
            raise bad("Invalid input for field/attribute flavorRef. "
                      "'flavorRef' is a required property")
        flavor = await self._usable_flavor(req, str(flavor_ref))
        if flavor is None:
            raise bad(f"Flavor {flavor_ref} could not be found.")
        image_ref = s.get("imageRef")
        if not isinstance(image_ref, str) or len(image_ref) < 2 or len(image_ref) > 255:
            raise bad("Invalid input for field/attribute imageRef. Can not find requested "
                      "image (zund boots servers from an image only)")
        if image_ref.startswith(("http://", "https://")):
            image_ref = image_ref.rstrip("/").rsplit("/", 1)[-1]
        _check_block_devices(s.get("block_device_mapping_v2"), image_ref)
        image_driver = self._config.default_image_driver
        if _is_uuid(image_ref):
            if not self._glance:
                raise bad(f"Image {image_ref} could not be found.")
            image_driver = "glance"
        elif image_driver == "glance" and not self._glance:
            image_driver = "docker"
        metadata = s.get("metadata") or {}
        if not isinstance(metadata, dict) or len(metadata) > _MAX_METADATA or any(
                not isinstance(k, str) or not isinstance(val, str) or not 1 <= len(k) <= 255
                or len(val) > 255 for k, val in metadata.items()):
            raise bad("Invalid input for field/attribute metadata: a map of up to "
                      f"{_MAX_METADATA} string keys (1-255 characters) to strings "
                      "(up to 255).")
        if s.get("key_name") is not None:
            raise bad(f"Invalid key_name provided: zund has no key pairs "
                      f"({s['key_name']!r}).")
        groups = s.get("security_groups")
        if groups is not None and (not isinstance(groups, list) or any(
                g not in _HARMLESS_SECURITY_GROUPS for g in groups)):
            raise bad("Security groups other than 'default' are not supported: zund has "
                      "no Neutron.")
        networks = s.get("networks")
        if networks not in (None, "auto", "none", []):
            raise bad("Invalid input for field/attribute networks: zund accepts only "
                      "'auto' or 'none' (it has no Neutron networks).")
        for key in ("min_count", "max_count"):
            if s.get(key) not in (None, 1, "1"):
                raise bad(f"Invalid input for field/attribute {key}: zund creates one "
                          "server per request.")
        if s.get("OS-DCF:diskConfig") not in (None, "AUTO", "MANUAL"):
            raise bad("Invalid input for field/attribute OS-DCF:diskConfig.")
        az = s.get("availability_zone")
        if az is not None and (not isinstance(az, str) or not az or len(az) > 255):
            raise bad("Invalid input for field/attribute availability_zone.")
        if s.get("config_drive") not in (None, False, "", "false", "False"):
            raise bad("config_drive is not supported: zund boots containers.")
        if s.get("return_reservation_id") not in (None, False):
            raise bad("return_reservation_id is not supported.")
        description = s.get("description")
        if description is not None and (not isinstance(description, str)
                                        or len(description) > 255):
            raise bad("Invalid input for field/attribute description.")
        hostname = s.get("hostname")
        if hostname is not None:
            if req.version < v("2.90"):
                raise bad("Additional properties are not allowed ('hostname' was unexpected)")
            if not isinstance(hostname, str) or not re.match(
                    r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$", hostname):
                raise bad("Invalid input for field/attribute hostname.")
        return CreateRequest.from_dict({
            "image": image_ref, "name": name, "cpu": float(flavor.vcpus),
            "memory": flavor.ram, "disk": flavor.disk or None, "labels": dict(metadata),
            "runtime": flavor.runtime, "availability_zone": az, "image_driver": image_driver,
            "hostname": hostname, "run": True,
        })

    @route("/servers", ["POST"])
    async def server_create(self, req: ApiRequest):
        ctx = req.ctx
        self._policy.authorize(ctx, "container:create")
        request = await self._create_request(req)
        # the flavor's runtime is the operator's choice, not the caller's: no
        # container:create:runtime check (that rule guards a user-chosen runtime)
        rec = await self._containers.create(ctx, request)
        location = f"{req.base_url}/v2.1/servers/{rec.uuid}"
        body = {"id": rec.uuid, "links": views.links(req.base_url, "servers", rec.uuid),
                "OS-DCF:diskConfig": "MANUAL", "security_groups": [{"name": "default"}],
                "adminPass": ""}
        return Reply(202, {"server": body}, {"Location": location})

    # -- list / show ------------------------------------------------------------------------

    async def _list(self, req: ApiRequest) -> tuple[list, int]:
        p = req.params
        ctx = req.ctx
        self._policy.authorize(ctx, "container:get_all")
        all_projects = schemas.optional_bool(p, "all_tenants", False) \
            if p.get("all_tenants") not in ("", None) else "all_tenants" in p
        if all_projects:
            self._policy.authorize(ctx, "container:get_all_all_projects")
        limit = p.get("limit")
        limit = self._config.max_limit if limit in (None, "") else min(
            schemas.parse_int(limit, "limit", minimum=0), self._config.max_limit)
        sort_key = p.get("sort_key") or "created_at"
        if sort_key == "display_name":
            sort_key = "name"
        if sort_key not in ("created_at", "updated_at", "name", "uuid", "id"):
            raise bad(f"Invalid input for query parameters sort_key. Value: {sort_key}.")
        if sort_key == "id":
            sort_key = "uuid"
        sort_dir = p.get("sort_dir") or "desc"
        if sort_dir not in ("asc", "desc"):
            raise bad(f"Invalid input for query parameters sort_dir. Value: {sort_dir}.")
        listed = await self._containers.list(ctx, all_projects)
        recs = list(listed.records)
        name = p.get("name")
        if name not in (None, ""):
            match = _name_matcher(str(name))
            recs = [r for r in recs if match(r.name)]
        status = p.get("status")
        if status not in (None, ""):
            wanted = str(status).upper()
            recs = [r for r in recs
                    if views.server_state(r.status, r.task_state)["status"] == wanted]
        if p.get("project_id") not in (None, "") and all_projects:
            recs = [r for r in recs if r.project_id == p["project_id"]]
        recs.sort(key=lambda r: (_sortable(getattr(r, sort_key, None)), r.uuid),
                  reverse=sort_dir == "desc")
        marker = p.get("marker")
        if marker not in (None, ""):
            for i, r in enumerate(recs):
                if r.uuid == marker:
                    recs = recs[i + 1:]
                    break
            else:
                raise bad(f"marker [{marker}] not found")
        return recs[:limit], limit

    def _page(self, req: ApiRequest, recs: list, limit: int, path: str, item) -> dict:
        body = {"servers": [item(r) for r in recs]}
        if recs and len(recs) == limit:
            body["servers_links"] = [{"rel": "next", "href": (
                f"{req.base_url}/v2.1/{path}?limit={limit}&marker={recs[-1].uuid}")}]
        return body

    @route("/servers", ["GET"])
    async def server_list(self, req: ApiRequest):
        recs, limit = await self._list(req)
        return self._page(req, recs, limit, "servers",
                          lambda r: views.server_brief(r, req.base_url))

    @route("/servers/detail", ["GET"])
    async def server_list_detail(self, req: ApiRequest):
        recs, limit = await self._list(req)
        await self._flavor_store.fresh()
        return self._page(req, recs, limit, "servers/detail",
                          lambda r: self._server_view(req, r))

    @route("/servers/<ident>", ["GET"])
    async def server_show(self, req: ApiRequest, ident: str):
        await self._flavor_store.fresh()
        return {"server": self._server_view(req, await self._get(req, ident))}

    @route("/servers/<ident>", ["PUT"])
    async def server_update(self, req: ApiRequest, ident: str):
        body = req.body
        if not isinstance(body, dict) or not isinstance(body.get("server"), dict):
            raise bad("Invalid input for field/attribute server. 'server' is a required "
                      "property")
        s = body["server"]
        unknown = sorted(set(s) - {"name", "description"})
        if unknown:
            raise bad("Additional properties are not allowed "
                      f"({', '.join(repr(k) for k in unknown)} were unexpected)")
        if s.get("description") is not None:
            raise bad("Server descriptions are not supported by zund.")
        if "name" not in s:
            return {"server": self._server_view(req, await self._get(req, ident))}
        try:
            name = schemas.validate_name(s["name"])
        except errors.InvalidInput as e:
            raise bad(f"Invalid input for field/attribute name. {e.msg}") from e
        rec = await self._containers.update(
            req.ctx, self._server_ref(req, ident, "container:rename"), {"name": name})
        return {"server": self._server_view(req, rec)}

    @route("/servers/<ident>", ["DELETE"])
    async def server_delete(self, req: ApiRequest, ident: str):
        ref = self._server_ref(req, ident, "container:delete")
        rec = await self._containers.show(req.ctx, ref)
        # Nova deletes a server in any state: a running one is stopped first; a
        # paused one (zund cannot stop it) needs a forced delete where policy allows
        force = False
        if rec.status == "Paused":
            if not self._policy.check(req.ctx, "container:delete_force",
                                      {"project_id": rec.project_id, "user_id": rec.user_id}):
                raise errors.Conflict("Cannot 'delete' instance while it is in vm_state "
                                      "paused: unpause it first.")
            force = True
            ref = self._server_ref(req, ident, "container:delete",
                                   extra_rules=("container:delete_force",))
        await self._containers.delete(req.ctx, ref, force=force, stop=not force)
        return Reply(204)

    # -- actions ----------------------------------------------------------------------------

    @route("/servers/<ident>/action", ["POST"])
    async def server_action(self, req: ApiRequest, ident: str):
        body = req.body
        if not isinstance(body, dict) or len(body) != 1:
            raise bad("Malformed request body: one action, e.g. {\"os-stop\": null}.")
        (action, arg), = body.items()
        handler = _ACTIONS.get(action)
        if handler is None:
            raise bad(f"There is no such action: {action}")
        return await handler(self, req, ident, arg)

    async def _stop(self, req, ident, arg):
        await self._containers.stop(req.ctx, self._server_ref(req, ident, "container:stop"))
        return Reply(202)

    async def _start(self, req, ident, arg):
        await self._containers.start(req.ctx,
                                     self._server_ref(req, ident, "container:start"))
        return Reply(202)

    async def _reboot(self, req, ident, arg):
        if not isinstance(arg, dict) or arg.get("type") not in ("SOFT", "HARD",
                                                                 "soft", "hard"):
            raise bad("Invalid input for field/attribute reboot. 'type' must be SOFT or "
                      "HARD")
        timeout = 0.0 if arg["type"].upper() == "HARD" else None
        await self._containers.reboot(
            req.ctx, self._server_ref(req, ident, "container:reboot"), timeout_s=timeout)
        return Reply(202)

    async def _pause(self, req, ident, arg):
        await self._containers.pause(req.ctx, self._server_ref(req, ident, "container:pause"))
        return Reply(202)

    async def _unpause(self, req, ident, arg):
        await self._containers.unpause(
            req.ctx, self._server_ref(req, ident, "container:unpause"))
        return Reply(202)

    async def _console_output(self, req, ident, arg):
        if arg is None:
            arg = {}
        if not isinstance(arg, dict):
            raise bad("Invalid input for field/attribute os-getConsoleOutput.")
        length = arg.get("length")
        tail = None
        if length not in (None, -1, "-1"):
            tail = schemas.parse_int(length, "length", minimum=-1)
            tail = None if tail == -1 else tail
        text = await self._containers.logs(
            req.ctx, self._server_ref(req, ident, "container:logs"), stdout=True,
            stderr=True, timestamps=False, tail=tail, since=None)
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        return {"output": text}


def _check_block_devices(mappings, image_ref: str) -> None:
    """Only the mapping that says "boot the image on local disk" (what
    python-openstackclient sends beside imageRef) is harmless; volumes are not."""
    if mappings in (None, []):
        return
    harmless = {"uuid": image_ref, "boot_index": 0, "source_type": "image",
                "destination_type": "local"}
    if not isinstance(mappings, list) or len(mappings) != 1 \
            or not isinstance(mappings[0], dict) or any(
                mappings[0].get(k) != val for k, val in harmless.items()) \
            or set(mappings[0]) - set(harmless) - {"delete_on_termination"}:
        raise bad("Block device mappings other than booting the image on local disk are "
                  "not supported: zund has no volumes service.")


def _sortable(value) -> tuple:
    return (0, "") if value is None else (1, value)


_ACTIONS = {
    "os-stop": ServersResource._stop,
    "os-start": ServersResource._start,
    "reboot": ServersResource._reboot,
    "pause": ServersResource._pause,
    "unpause": ServersResource._unpause,
    "os-getConsoleOutput": ServersResource._console_output,
}
