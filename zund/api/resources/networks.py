"""Tenant networks (issue 16): ``/v1/networks`` create (POST), list, show, delete
(Zun 1.27: refused with 409 while ports use the network). The networks live in
the configured backend (``[network] driver``: ``zund.network``); with ``driver =
none`` every route answers 400 naming ``network`` (as the container network
actions do).

A network view is Zun's (``uuid``, ``name``, ``network_id``, ``neutron_net_id``,
``project_id``) plus the backend's facts (``cidr``, ``shared``, ``mtu``,
``backend``, ``segmentation_id``, ``created_at``)."""

from __future__ import annotations

from zund.api import schemas, views
from zund.api.pipeline import ApiRequest, Reply, route
from zund.common import errors

_FIELDS = ("name", "cidr", "shared", "neutron_net_id")


def network_view(net, base_url: str) -> dict:
    return {
        "uuid": net.id, "name": net.name, "network_id": net.id,
        "neutron_net_id": net.id if net.backend == "neutron" else None,
        "project_id": net.project_id, "shared": net.shared, "cidr": net.cidr,
        "gateway": net.gateway, "mtu": net.mtu, "backend": net.backend,
        "segmentation_id": net.segmentation_id, "created_at": net.created_at,
        "links": [{"href": f"{base_url}/v1/networks/{net.id}", "rel": "self"},
                  {"href": f"{base_url}/networks/{net.id}", "rel": "bookmark"}],
    }


def validate_network(body) -> dict:
    """``{"network": {name, cidr?, shared?, neutron_net_id?}}``; 400 naming the field."""
    if not isinstance(body, dict):
        raise schemas.invalid("body", "expected a JSON object")
    schemas.check_unknown(body, ("network",))
    fields = body.get("network")
    if not isinstance(fields, dict):
        raise schemas.invalid("network", "expected an object")
    schemas.check_unknown(fields, _FIELDS)
    name = fields.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 255 or name != name.strip():
        raise schemas.invalid("name", "is required: 1-255 characters, no outer spaces")
    out = {"name": name}
    cidr = fields.get("cidr")
    if cidr is not None:
        if not isinstance(cidr, str) or len(cidr) > 64:
            raise schemas.invalid("cidr", "must be an IPv4 subnet such as 10.90.1.0/24")
        out["cidr"] = cidr
    shared = fields.get("shared")
    if shared is not None:
        out["shared"] = schemas.parse_bool(shared, "shared")
    if fields.get("neutron_net_id") is not None:
        if not isinstance(fields["neutron_net_id"], str):
            raise schemas.invalid("neutron_net_id", "must be a string")
        out["neutron_net_id"] = fields["neutron_net_id"]
    return out


class NetworksResource:
    """Routes of ``/networks``; mixed into ``zund.api.app.ZunAPI``. The backend is
    ``self.networks`` (an INetworkBackend; None: ``[network] driver = none``),
    set by the composition root."""

    networks = None

    def _network_backend(self):
        if self.networks is None:
            raise errors.InvalidInput(
                message="Networks are not supported by this cloud ([network] driver = "
                        "none).", field="network")
        return self.networks

    @route("/networks", ["POST"])
    async def network_create(self, req: ApiRequest):
        self._policy.authorize(req.ctx, "network:create")
        backend = self._network_backend()
        fields = validate_network(req.body)
        if "neutron_net_id" in fields:
            import inspect

            params = inspect.signature(backend.create_network).parameters
            if "neutron_net_id" not in params:
                raise schemas.invalid("neutron_net_id", "this network backend does not "
                                                        "take an existing Neutron network")
            net = await backend.create_network(req.ctx, fields["name"], None,
                                               fields.get("shared", False),
                                               **{"neutron_net_id": fields["neutron_net_id"]})
        else:
            net = await backend.create_network(req.ctx, fields["name"], fields.get("cidr"),
                                               fields.get("shared", False))
        return Reply(200, {"network": network_view(net, req.base_url)},
                     {"Location": f"{req.base_url}/v1/networks/{net.id}"})

    @route("/networks", ["GET"])
    async def network_list(self, req: ApiRequest):
        self._policy.authorize(req.ctx, "network:get_all")
        nets = await self._network_backend().list_networks(req.ctx)
        return views.collection("networks", [network_view(n, req.base_url) for n in nets],
                                None)

    @route("/networks/<ident>", ["GET"])
    async def network_show(self, req: ApiRequest, ident: str):
        self._policy.authorize(req.ctx, "network:get_all")
        net = await self._network_backend().get_network(req.ctx, ident)
        return {"network": network_view(net, req.base_url)}

    @route("/networks/<ident>", ["DELETE"], min_version="1.27")
    async def network_delete(self, req: ApiRequest, ident: str):
        self._policy.authorize(req.ctx, "network:delete")
        await self._network_backend().delete_network(req.ctx, ident)
        return Reply(204)
