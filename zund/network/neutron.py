"""The Neutron network backend (``[network] driver = neutron``, issue 16 §3).

Networks, subnets and ports live in a real cloud's Neutron (API v2.0). Two
identities reach it, as Nova does:

- the CALLER (the request's validated Keystone token, ``ctx.auth_token``) makes
  and reads networks, subnets, ports and security groups, so Neutron itself
  decides what the caller may see and use (another project's private network is
  a 404, a shared one needs Neutron's admin);
- zund's SERVICE user (``[neutron]`` auth options) does what only a compute
  service may: set ``binding:host_id`` (and mark the ports zund made in
  ``binding:profile``, which only a service can write), read a port's binding,
  and its token rides along as ``X-Service-Token`` on the caller's requests so
  that Neutron lets the caller's request delete a ``compute:*`` port
  (Neutron's ``service_roles:service`` rule). A call without a caller token
  (the owner releasing ports with an internal context) is made as the service.

A port: created by the caller on the network (``device_owner`` ``compute:zun``,
``device_id`` the container uuid, ``v4-fixed-ip`` as ``fixed_ips``), or a
user-supplied port (``nets: [{"port": id}]``, kept on delete); bound to the node
(``binding:host_id``) by the service; then waited for until ACTIVE (the node's
Neutron agent wired it) for ``[neutron] port_active_timeout`` seconds, else a
:class:`NetworkError` saying so. ``release`` deletes the ports zund made and only
unbinds user-supplied ones.

Plugging is by the port's ``vif_type`` (``zund.network.plugger``): ``bridge`` and
``tap`` ports carry the Linux bridge in ``vif_details["bridge_name"]`` and the
subnet in ``vif_details["cidr"]``. An ``ovs`` port would need an OVS plugger
(an internal port or veth on ``br-int`` with ``external-ids:iface-id`` = port id
and ``attached-mac``, so the OVS agent finds and wires it); this machine has no
OVS datapath, so none is written.

This node's ports are kept in memory (``ports_of``/``port``, read synchronously
by ``zund.network.node``) and reloaded from Neutron when the service starts
(``device_owner=compute:zun``, ``binding:host_id`` = this node).
"""

from __future__ import annotations

import ipaddress
from typing import Any, Callable

import attrs
from keystoneauth1 import exceptions as ks_exc
from oslo_utils import uuidutils
from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger
from zope.interface import implementer

from zund.common import errors
from zund.network import errors as net_errors
from zund.network.interface import INetworkBackend, Network, Port

log = Logger()

DEVICE_OWNER = "compute:zun"
#: key of ``binding:profile`` on the ports zund created (only a service can write it)
MADE_MARK = "zund_made"
#: security group holding a container's exposed ports (Zun makes one the same way)
EXPOSE_SG = "zund-expose-{uuid}"
#: binding:vif_type values of a port Neutron could not bind
UNBOUND = ("unbound", "binding_failed", "")


class PortInUse(errors.Conflict):
    message = "Port {port} is in use by another device ({device})."


class AmbiguousNetwork(errors.Conflict):
    message = "Several networks are named {network}; use its id."


# -- the blocking half ----------------------------------------------------------------------


class NeutronClient:
    """Blocking Neutron v2.0 calls over a keystoneauth ``Adapter`` (service type
    ``network``) whose auth is zund's service user (None: no service identity,
    e.g. an ``endpoint_override`` Neutron used with callers' tokens only).

    ``token``: a caller's token (sent as ``X-Auth-Token`` with the service's as
    ``X-Service-Token``), or None to call as the service. Call only off the
    reactor. Raises keystoneauth's exceptions (translated by the async half)."""

    def __init__(self, adapter):
        self._adapter = adapter

    @property
    def has_service_identity(self) -> bool:
        return (self._adapter.auth or self._adapter.session.auth) is not None

    def _kw(self, token: str | None) -> dict:
        if token is None:
            return {}
        headers = {"X-Auth-Token": token}
        if self.has_service_identity:
            headers["X-Service-Token"] = self._adapter.get_token()
        return {"headers": headers, "authenticated": False}

    def get(self, path: str, token: str | None, **params) -> dict:
        return self._adapter.get(path, params=params or None, **self._kw(token)).json()

    def post(self, path: str, token: str | None, body: dict) -> dict:
        return self._adapter.post(path, json=body, **self._kw(token)).json()

    def put(self, path: str, token: str | None, body: dict) -> dict:
        return self._adapter.put(path, json=body, **self._kw(token)).json()

    def delete(self, path: str, token: str | None) -> None:
        self._adapter.delete(path, **self._kw(token))


def make_adapter(conf) -> Any:
    """The keystoneauth adapter of ``[neutron]`` (session, service-user auth and
    adapter options, like ``zund.images.glance.make_adapter``)."""
    from zund.conf._service_client import load_adapter
    from zund.conf.neutron import GROUP

    return load_adapter(conf, GROUP)


# -- translation (by type; Neutron's error body names its exception type) -------------------


def _neutron_error(e: ks_exc.HttpError) -> tuple[str, str]:
    """(Neutron's exception type, its message) from the response body, if any."""
    try:
        body = e.response.json()["NeutronError"]
        return str(body.get("type") or ""), str(body.get("message") or e)
    except Exception:  # not Neutron's error schema (a proxy, a 5xx page)
        return "", str(e)


def _translate(e: Exception, *, not_found: Callable[[], errors.ZundError] | None = None,
               network: str = "", address: str = "", field: str | None = None) -> errors.ZundError:
    if isinstance(e, ks_exc.NotFound):
        if not_found is not None:
            return not_found()
        return net_errors.NetworkNotFound(network=network or "?")
    if isinstance(e, ks_exc.HttpError):
        kind, msg = _neutron_error(e)
        if isinstance(e, ks_exc.Conflict):
            if kind in ("IpAddressAlreadyAllocated", "IpAddressInUse"):
                return net_errors.AddressInUse(address=address or "?", network=network or "?")
            return errors.Conflict(f"Neutron: {msg}")
        if isinstance(e, ks_exc.Forbidden):
            return net_errors.PolicyForbidden(f"Neutron's policy refused it: {msg}")
        if isinstance(e, ks_exc.BadRequest):
            return errors.InvalidInput(field=field or "nets", reason=f"Neutron: {msg}")
        if isinstance(e, ks_exc.Unauthorized):
            return net_errors.NetworkError(reason=(
                "Neutron refused the credentials (the caller's token, or [neutron] auth): "
                "the neutron backend needs auth_strategy = keystone"))
        return net_errors.NetworkError(reason=f"Neutron answered {e.http_status}: {msg}")
    if isinstance(e, (ks_exc.ConnectFailure, ks_exc.ConnectionError, ks_exc.ConnectTimeout,
                      ks_exc.EndpointNotFound, ks_exc.DiscoveryFailure)):
        return net_errors.NetworkError(reason=f"Neutron is unreachable: {e}")
    if isinstance(e, ks_exc.ClientException):
        return net_errors.NetworkError(reason=f"Neutron call failed: {e}")
    return net_errors.NetworkError(reason=f"Neutron call failed: {type(e).__name__}: {e}")


def network_view(n: dict, subnets: list[dict]) -> Network:
    """A Neutron network (and its subnets) as zund's :class:`Network`: the oldest
    IPv4 subnet gives ``cidr``/``gateway``."""
    v4 = sorted((s for s in subnets if s.get("network_id") == n["id"]
                 and s.get("ip_version") == 4), key=lambda s: s.get("created_at") or "")
    first = v4[0] if v4 else None
    return Network(id=n["id"], name=n.get("name") or "",
                   project_id=n.get("project_id") or n.get("tenant_id") or "",
                   shared=bool(n.get("shared")), cidr=first["cidr"] if first else "",
                   gateway=first.get("gateway_ip") if first else None,
                   mtu=int(n.get("mtu") or 1500), backend="neutron",
                   segmentation_id=n.get("provider:segmentation_id"),
                   created_at=n.get("created_at") or "")


def _exposed_rules(exposed_ports: dict) -> list[tuple[str, int]]:
    """Zun's ``{"80/tcp": {}}`` -> [("tcp", 80)]; InvalidInput on anything else."""
    out = []
    for key in exposed_ports or {}:
        port, _, proto = str(key).partition("/")
        proto = (proto or "tcp").lower()
        try:
            number = int(port)
        except ValueError:
            number = 0
        if proto not in ("tcp", "udp") or not 1 <= number <= 65535:
            raise errors.InvalidInput(field="exposed_ports", reason=(
                f"{key!r} is not <port>/<tcp|udp> with a port in 1-65535"))
        out.append((proto, number))
    return out


# -- the backend ------------------------------------------------------------------------------


@implementer(INetworkBackend)
class NeutronNetworks(service.Service):
    """``client``: :class:`NeutronClient`; ``node``: this node's name (its
    ``binding:host_id``); ``run_blocking(fn, *args) -> Deferred``: a bounded pool;
    ``clock``: ``IReactorTime`` for the ACTIVE wait."""

    name = "neutron"

    def __init__(self, client: NeutronClient, node: str, run_blocking: Callable, clock, *,
                 port_active_timeout_s: float = 60.0, port_poll_interval_s: float = 0.5,
                 auto_cidr_pool: str = "10.96.0.0/12"):
        self._client = client
        self.node = node
        self._run_blocking = run_blocking
        self._clock = clock
        self.port_active_timeout_s = port_active_timeout_s
        self.port_poll_interval_s = port_poll_interval_s
        self._pool = ipaddress.ip_network(auto_cidr_pool)
        #: this node's ports by id (what ``zund.network.node`` reads synchronously)
        self.ports: dict[str, Port] = {}
        self._loading: defer.Deferred | None = None

    # -- service: this node's ports come back from Neutron --------------------------------

    def startService(self):
        super().startService()
        self._loading = defer.Deferred.fromCoroutine(self.load_ports())
        self._loading.addErrback(lambda f: log.warn(
            "network.neutron.load_failed node={node} reason={r}", node=self.node,
            r=f.getErrorMessage()))

    def stopService(self):
        super().stopService()
        return self._loading

    async def wait_loaded(self) -> None:
        """Until the start-up reload of this node's ports is done (or failed: logged)."""
        if self._loading is not None and not self._loading.called:
            done = defer.Deferred()
            self._loading.addBoth(lambda r: (done.callback(None), r)[1])
            await done

    async def load_ports(self) -> None:
        """This node's ``compute:zun`` ports, as Neutron has them."""
        body = await self._call(self._client.get, "/v2.0/ports", None,
                                device_owner=DEVICE_OWNER, **{"binding:host_id": self.node})
        for p in body.get("ports") or []:
            if p.get("binding:vif_type") in UNBOUND:
                continue
            net = await self._net(None, p["network_id"])
            self.ports[p["id"]] = self._port_view(p, net, await self._subnets(None, net.id))
        log.info("network.neutron.loaded node={node} ports={n}", node=self.node,
                 n=len(self.ports))

    def port(self, port_id: str) -> Port:
        try:
            return self.ports[port_id]
        except KeyError:
            raise net_errors.PortNotFound(port=port_id) from None

    def ports_of(self, container_uuid: str) -> list[Port]:
        return [p for p in self.ports.values() if p.device_id == container_uuid]

    # -- calls ------------------------------------------------------------------------------

    async def _call(self, fn, *args, not_found=None, network="", address="", field=None,
                    **kwargs):
        try:
            return await self._run_blocking(fn, *args, **kwargs)
        except errors.ZundError:
            raise
        except Exception as e:
            raise _translate(e, not_found=not_found, network=network, address=address,
                             field=field) from e

    async def _subnets(self, token, net_id: str | None = None) -> list[dict]:
        params = {"network_id": net_id} if net_id else {}
        return (await self._call(self._client.get, "/v2.0/subnets", token,
                                 **params)).get("subnets") or []

    async def _net(self, token, net_id: str) -> Network:
        n = (await self._call(self._client.get, f"/v2.0/networks/{net_id}", token,
                              network=net_id))["network"]
        return network_view(n, await self._subnets(token, net_id))

    # -- networks ---------------------------------------------------------------------------

    async def list_networks(self, ctx) -> list[Network]:
        nets = (await self._call(self._client.get, "/v2.0/networks",
                                 ctx.auth_token)).get("networks") or []
        subnets = await self._subnets(ctx.auth_token)
        return [network_view(n, subnets) for n in nets]

    async def get_network(self, ctx, name_or_id) -> Network:
        token = ctx.auth_token
        ref = str(name_or_id or "")
        if not ref:
            raise net_errors.NetworkNotFound(network=ref)
        if uuidutils.is_uuid_like(ref):
            try:
                return await self._net(token, ref)
            except net_errors.NetworkNotFound:
                pass  # a network may be NAMED like a uuid
        found = (await self._call(self._client.get, "/v2.0/networks", token,
                                  name=ref)).get("networks") or []
        own = [n for n in found if n.get("project_id") == ctx.project_id]
        pick = own or found
        if not pick:
            raise net_errors.NetworkNotFound(network=ref)
        if len(pick) > 1:
            raise AmbiguousNetwork(network=ref)
        return network_view(pick[0], await self._subnets(token, pick[0]["id"]))

    async def create_network(self, ctx, name, cidr=None, shared=False) -> Network:
        if shared and not ctx.is_admin:
            raise net_errors.PolicyForbidden(action="network:create:shared")
        if cidr is not None:
            try:
                subnet = ipaddress.ip_network(str(cidr), strict=False)
            except ValueError:
                subnet = None
            if subnet is None or subnet.version != 4 or subnet.prefixlen > 30:
                raise errors.InvalidInput(field="cidr", reason=(
                    f"{cidr!r} is not an IPv4 network of at most /30"))
        token = ctx.auth_token
        n = (await self._call(self._client.post, "/v2.0/networks", token,
                              {"network": {"name": name, "shared": bool(shared)}}))["network"]
        if cidr is None:
            subnet = self._auto_cidr(n["id"])
        try:
            s = (await self._call(self._client.post, "/v2.0/subnets", token, {"subnet": {
                "network_id": n["id"], "ip_version": 4, "cidr": str(subnet),
                "name": f"{name}-subnet"}}, field="cidr"))["subnet"]
        except BaseException:
            await self._quietly(self._client.delete, f"/v2.0/networks/{n['id']}", token)
            raise
        log.info("network.neutron.created net={net} project={p} cidr={cidr}", net=n["id"],
                 p=ctx.project_id, cidr=s["cidr"])
        return network_view(n, [s])

    def _auto_cidr(self, net_id: str):
        """A /24 of ``auto_cidr_pool`` picked by the network's id (Neutron allows
        overlapping subnets, so a clash only matters to a router joining both)."""
        if self._pool.prefixlen >= 24:
            return self._pool
        blocks = 1 << (24 - self._pool.prefixlen)
        index = int(net_id.replace("-", ""), 16) % blocks
        return ipaddress.ip_network((int(self._pool.network_address) + index * 256, 24))

    async def delete_network(self, ctx, name_or_id) -> None:
        net = await self.get_network(ctx, name_or_id)
        try:
            await self._call(self._client.delete, f"/v2.0/networks/{net.id}", ctx.auth_token,
                             network=net.id)
        except errors.Conflict as e:
            ports = (await self._call(self._client.get, "/v2.0/ports", ctx.auth_token,
                                      network_id=net.id)).get("ports") or []
            raise net_errors.NetworkInUse(network=name_or_id, count=len(ports)) from e

    async def default_network(self, ctx) -> Network | None:
        """Zun's rule: the project's oldest network, else the oldest shared one."""
        nets = await self.list_networks(ctx)
        for group in ([n for n in nets if n.project_id == ctx.project_id],
                      [n for n in nets if n.shared]):
            if group:
                return min(group, key=lambda n: (n.created_at, n.id))
        return None

    # -- ports --------------------------------------------------------------------------------

    async def allocate(self, ctx, container_uuid, host, requests) -> list[Port]:
        made: list[tuple[Port | str, bool]] = []  # (port or bare id, zund made it)
        try:
            out = []
            for req in requests or ():
                out.append(await self._allocate_one(ctx, container_uuid, host, dict(req), made))
        except BaseException:
            for p, ours in reversed(made):
                await self._give_back(ctx, container_uuid, p if isinstance(p, str) else p.id,
                                      ours, quiet=True)
            raise
        for p in out:
            self.ports[p.id] = p
        return out

    async def _allocate_one(self, ctx, container_uuid, host, req: dict, made: list) -> Port:
        token = ctx.auth_token
        if req.get("port"):
            pid = str(req["port"])
            p = (await self._call(self._client.get, f"/v2.0/ports/{pid}", token,
                                  not_found=lambda: net_errors.PortNotFound(port=pid)))["port"]
            if p.get("device_id") not in (None, "", container_uuid):
                raise PortInUse(port=pid, device=p["device_id"])
            net = await self._net(token, p["network_id"])
            if req.get("network") and req["network"] not in (net.id, net.name):
                raise errors.InvalidInput(field="nets", reason=(
                    f"port {pid} is on network {net.id}, not {req['network']}"))
            await self._call(self._client.put, f"/v2.0/ports/{pid}", token, {"port": {
                "device_owner": DEVICE_OWNER, "device_id": container_uuid}},
                not_found=lambda: net_errors.PortNotFound(port=pid))
            ours = False
            made.append((pid, ours))
        else:
            if req.get("network"):
                net = await self.get_network(ctx, req["network"])
            else:
                net = await self.default_network(ctx)
                if net is None:
                    raise net_errors.NoDefaultNetwork(project_id=ctx.project_id)
            body = {"network_id": net.id, "device_owner": DEVICE_OWNER,
                    "device_id": container_uuid, "name": f"zund-{container_uuid}"}
            ip = req.get("v4-fixed-ip")
            if ip:
                try:
                    ipaddress.IPv4Address(str(ip))
                except ValueError:
                    raise errors.InvalidInput(field="v4-fixed-ip", reason=(
                        f"{ip!r} is not an IPv4 address")) from None
                body["fixed_ips"] = [{"ip_address": str(ip)}]
            p = (await self._call(self._client.post, "/v2.0/ports", token, {"port": body},
                                  network=net.id, address=str(ip or ""),
                                  field="v4-fixed-ip" if ip else "nets"))["port"]
            pid = p["id"]
            ours = True
            made.append((pid, ours))
        # the service binds it to this node (Neutron: admin or service only)
        profile = {MADE_MARK: True} if ours else {}
        bound = (await self._call(self._client.put, f"/v2.0/ports/{pid}", None, {"port": {
            "binding:host_id": host, "binding:profile": profile}},
            not_found=lambda: net_errors.PortNotFound(port=pid)))["port"]
        bound = await self._wait_active(bound, host)
        port = self._port_view(bound, net, await self._subnets(token, net.id), host=host)
        made[-1] = (port, ours)
        log.info("network.neutron.port_active port={port} container={uuid} host={host} "
                 "vif_type={vif}", port=port.id, uuid=container_uuid, host=host,
                 vif=port.vif_type)
        return port

    async def _wait_active(self, p: dict, host: str) -> dict:
        """Poll the port (as the service: the binding is admin-only to read) until
        ACTIVE, or fail clearly at the deadline or when binding failed."""
        deadline = self._clock.seconds() + self.port_active_timeout_s
        while True:
            vif = p.get("binding:vif_type")
            if vif in ("binding_failed",):
                raise net_errors.NetworkError(reason=(
                    f"Neutron could not bind port {p['id']} to host {host} (vif_type "
                    f"{vif}): no mechanism driver serves that host; is its agent running?"))
            if p.get("status") == "ACTIVE" and vif not in UNBOUND:
                return p
            if self._clock.seconds() >= deadline:
                raise net_errors.NetworkError(reason=(
                    f"port {p['id']} did not become ACTIVE within "
                    f"{self.port_active_timeout_s:g}s of binding to host {host} (status "
                    f"{p.get('status')}, vif_type {vif}): is the Neutron agent on {host} "
                    f"up? ([neutron] port_active_timeout)"))
            await task.deferLater(self._clock, self.port_poll_interval_s, lambda: None)
            pid = p["id"]
            p = (await self._call(self._client.get, f"/v2.0/ports/{pid}", None,
                                  not_found=lambda: net_errors.PortNotFound(port=pid)))["port"]

    def _port_view(self, p: dict, net: Network, subnets: list[dict], host: str = "") -> Port:
        fixed = tuple({"subnet_id": ip.get("subnet_id"), "ip_address": ip["ip_address"]}
                      for ip in p.get("fixed_ips") or []
                      if ipaddress.ip_address(ip["ip_address"]).version == 4)
        by_id = {s["id"]: s for s in subnets}
        first = by_id.get(fixed[0]["subnet_id"]) if fixed else None
        details = {k: v for k, v in (p.get("binding:vif_details") or {}).items()
                   if k != "bound_drivers"}
        details["cidr"] = first["cidr"] if first else net.cidr
        details["gateway"] = first.get("gateway_ip") if first else net.gateway
        return Port(id=p["id"], net_id=p["network_id"], mac=p["mac_address"], fixed_ips=fixed,
                    mtu=net.mtu, vif_type=p.get("binding:vif_type") or "",
                    vif_details=details, security_groups=tuple(p.get("security_groups") or ()),
                    device_id=p.get("device_id") or "",
                    host=p.get("binding:host_id") or host or self.node)

    async def release(self, ctx, container_uuid, ports) -> None:
        for p in ports:
            cur = await self._get_port(p.id)
            if cur is not None and cur.get("device_id") == container_uuid:
                ours = bool((cur.get("binding:profile") or {}).get(MADE_MARK))
                await self._give_back(ctx, container_uuid, p.id, ours)
            self.ports.pop(p.id, None)
        await self._drop_expose_group(ctx, container_uuid)

    async def _get_port(self, pid: str) -> dict | None:
        try:
            return (await self._call(self._client.get, f"/v2.0/ports/{pid}", None,
                                     not_found=lambda: net_errors.PortNotFound(port=pid)))["port"]
        except net_errors.PortNotFound:
            return None

    async def _give_back(self, ctx, container_uuid, pid: str, ours: bool, quiet=False) -> None:
        """Delete a port zund made (the caller's request, with the service token);
        unbind a user-supplied one and hand it back to its owner."""
        try:
            if ours:
                await self._call(self._client.delete, f"/v2.0/ports/{pid}", ctx.auth_token,
                                 not_found=lambda: net_errors.PortNotFound(port=pid))
            else:
                await self._call(self._client.put, f"/v2.0/ports/{pid}", None, {"port": {
                    "device_id": "", "device_owner": "", "binding:host_id": "",
                    "binding:profile": {}}},
                    not_found=lambda: net_errors.PortNotFound(port=pid))
        except net_errors.PortNotFound:
            pass
        except errors.ZundError as e:
            if not quiet:
                raise
            log.info("network.neutron.rollback_failed port={port} container={uuid} "
                     "reason={r}", port=pid, uuid=container_uuid, r=str(e))

    async def _quietly(self, fn, *args) -> None:
        try:
            await self._call(fn, *args)
        except errors.ZundError as e:
            log.info("network.neutron.cleanup_failed reason={r}", r=str(e))

    # -- security -----------------------------------------------------------------------------

    async def _security_group_ids(self, ctx, names) -> list[str]:
        ids = []
        for ref in names:
            ref = str(ref)
            found = (await self._call(self._client.get, "/v2.0/security-groups",
                                      ctx.auth_token, **({"id": ref} if uuidutils.is_uuid_like(ref)
                                                         else {"name": ref})))
            groups = [g for g in found.get("security_groups") or []
                      if g.get("project_id") == ctx.project_id] or \
                found.get("security_groups") or []
            if len(groups) != 1:
                raise errors.InvalidInput(field="security_groups", reason=(
                    f"security group {ref} " + ("is ambiguous; use its id" if groups
                                                else "could not be found")))
            ids.append(groups[0]["id"])
        return ids

    async def _expose_group(self, ctx, container_uuid, rules) -> str:
        """The container's ``zund-expose-<uuid>`` group: ingress to its exposed ports."""
        name = EXPOSE_SG.format(uuid=container_uuid)
        token = ctx.auth_token
        found = (await self._call(self._client.get, "/v2.0/security-groups", token,
                                  name=name)).get("security_groups") or []
        if found:
            sg = found[0]
        else:
            sg = (await self._call(self._client.post, "/v2.0/security-groups", token, {
                "security_group": {"name": name, "description": (
                    f"exposed ports of container {container_uuid} (zund)")}}))["security_group"]
        have = {(r.get("protocol"), r.get("port_range_min"))
                for r in sg.get("security_group_rules") or [] if r.get("direction") == "ingress"}
        for proto, number in rules:
            if (proto, number) in have:
                continue
            await self._call(self._client.post, "/v2.0/security-group-rules", token, {
                "security_group_rule": {"security_group_id": sg["id"], "direction": "ingress",
                                        "ethertype": "IPv4", "protocol": proto,
                                        "port_range_min": number, "port_range_max": number,
                                        "remote_ip_prefix": "0.0.0.0/0"}})
        return sg["id"]

    async def _drop_expose_group(self, ctx, container_uuid) -> None:
        name = EXPOSE_SG.format(uuid=container_uuid)
        try:
            found = (await self._call(self._client.get, "/v2.0/security-groups",
                                      ctx.auth_token, name=name)).get("security_groups") or []
        except errors.ZundError as e:
            log.info("network.neutron.cleanup_failed reason={r}", r=str(e))
            return
        for sg in found:
            await self._quietly(self._client.delete, f"/v2.0/security-groups/{sg['id']}",
                                ctx.auth_token)

    async def update_security(self, ctx, port, security_groups, exposed_ports) -> Port:
        rules = _exposed_rules(exposed_ports)
        ids = await self._security_group_ids(ctx, security_groups or ())
        if rules and not ids:  # exposing ports adds to the groups the port has
            ids = [g for g in port.security_groups
                   if g != EXPOSE_SG.format(uuid=port.device_id)]
        if rules:
            ids.append(await self._expose_group(ctx, port.device_id, rules))
        ids = list(dict.fromkeys(ids))
        if not ids:
            return port  # Neutron's default group stays
        p = (await self._call(self._client.put, f"/v2.0/ports/{port.id}", ctx.auth_token,
                              {"port": {"security_groups": ids}},
                              not_found=lambda: net_errors.PortNotFound(port=port.id)))["port"]
        out = attrs.evolve(port, security_groups=tuple(p.get("security_groups") or ids))
        if out.id in self.ports:
            self.ports[out.id] = out
        return out


def from_conf(conf, reactor, node: str) -> NeutronNetworks:
    """The node's Neutron backend from ``[neutron]`` (``zund.network.factory``).
    Its thread pool starts and stops with it."""
    from zund.runtimes.executor import make_run_blocking

    nc = conf.neutron
    run_blocking, pool = make_run_blocking(reactor, nc.max_workers, name="zund-neutron")
    backend = _PooledNeutronNetworks(
        NeutronClient(make_adapter(conf)), node, run_blocking, reactor,
        port_active_timeout_s=nc.port_active_timeout,
        port_poll_interval_s=nc.port_poll_interval, auto_cidr_pool=nc.auto_cidr_pool)
    backend._thread_pool = pool
    return backend


class _PooledNeutronNetworks(NeutronNetworks):
    """A backend owning its thread pool (started before, stopped after the service)."""

    _thread_pool = None

    def startService(self):
        self._thread_pool.start()
        super().startService()

    def stopService(self):
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        loading = super().stopService()
        if loading is not None:
            await loading
        self._thread_pool.stop()
