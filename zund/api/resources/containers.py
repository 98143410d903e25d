"""Containers and their actions (zun-api.md §5.1, §5.2, §7)."""

from __future__ import annotations

import base64
import binascii
import ipaddress

from zund.api import schemas, views
from zund.api.microversions import v
from zund.common import errors
from zund.records import CreateRequest
from zund.api.pipeline import JSON, ApiRequest, Reply, paginate, route


class ContainersResource:
    """Routes of ``/containers``; mixed into ``zund.api.app.ZunAPI`` (uses ``ApiBase``)."""

    def _generate_name(self) -> str:
        return f"{self._rng.choice(_GREEK)}-{self._rng.randint(1, 24)}-container"

    # -- containers: CRUD ------------------------------------------------------------

    @route("/containers", ["POST"])
    async def container_create(self, req: ApiRequest):
        ctype = (req.header("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != JSON:
            raise errors.UnsupportedMediaType(content_type=ctype or "(none)")
        ctx = req.ctx
        self._policy.authorize(ctx, "container:create")
        body = req.body if req.body is not None else {}
        # the pipeline's _read_body ran check_storable on req.body
        request = schemas.validate_create(body, req.version, self._limits,
                                          networks=self.networks is not None,
                                          storable_checked=True)
        if request.get("runtime") is not None:
            self._policy.authorize(ctx, "container:create:runtime")
        if request.get("privileged"):
            self._policy.authorize(ctx, "container:create:privileged")
        if request.get("host") is not None:
            self._policy.authorize(ctx, "container:create:requested_destination")
        if request.get("image_pull_policy") is not None:
            self._policy.authorize(ctx, "container:create:image_pull_policy")
        for i, mount in enumerate(request.get("mounts") or ()):
            if mount.get("host_path") and not self._policy.check(
                    ctx, "container:create:host_mount", {"project_id": ctx.project_id}):
                raise errors.PolicyNotAuthorized(
                    f"mounts[{i}].source: binding the host path {mount['source']} "
                    "needs the admin role (policy container:create:host_mount); "
                    "use a volume name instead.", action="container:create:host_mount")
        request.setdefault("name", self._generate_name())
        # the entry node's default driver, as Zun's API applies its own
        request.setdefault("image_driver", self._config.default_image_driver)
        request["run"] = schemas.optional_bool(self._query(req.raw), "run", False)
        if request.get("registry") is not None:
            await self._resolve_registry(ctx, request)
        if self.networks is not None:
            await self._resolve_nets(ctx, request)
        rec = await self._containers.create(ctx, CreateRequest.from_dict(request))
        location = f"{req.base_url}/v1/containers/{rec.uuid}"
        return Reply(202, self._container_view(req, rec), {"Location": location})

    async def _resolve_nets(self, ctx, request: dict) -> None:
        """``nets`` names -> network ids (another project's private network: 404);
        no ``nets``: Zun's default network (the project's oldest, else the oldest
        shared one), or none at all when there is no network."""
        nets = request.get("nets") or []
        if not nets:
            default = await self.networks.default_network(ctx)
            if default is not None:
                request["nets"] = [{"network": default.id}]
            return
        for entry in nets:
            if entry.get("network"):
                entry["network"] = (await self.networks.get_network(ctx, entry["network"])).id

    async def _network_ref_action(self, req: ApiRequest, ident: str, rule: str, action: str,
                                  args: dict):
        rec = await self._containers.network_action(req.ctx, self._ref(req, ident, rule),
                                                    action, args)
        return rec

    async def _resolve_registry(self, ctx, request: dict) -> None:
        """``registry`` (name or uuid, the caller's project) -> ``registry_id``; the
        image is named under the registry's domain, as the pull needs it."""
        if self._registries is None:
            raise schemas.invalid("registry", "this node serves no registries.")
        ident = request.pop("registry")
        try:
            entry = await self._registries.resolve(ctx, ident)
        except errors.RegistryNotFound as e:
            raise schemas.invalid("registry", f"registry {ident} could not be found.") from e
        request["registry_id"] = entry.uuid
        if not request["image"].startswith(entry.domain.rstrip("/") + "/"):
            request["image"] = f"{entry.domain.rstrip('/')}/{request['image']}"

    @route("/containers", ["GET"])
    async def container_list(self, req: ApiRequest):
        query = schemas.parse_list_query(
            req.params, max_limit=self._config.max_limit,
            sort_keys=schemas.CONTAINER_SORT_KEYS, default_sort_key="id",
            filters=schemas.CONTAINER_FILTERS, extra=("all_projects",))
        ctx = req.ctx
        self._policy.authorize(ctx, "container:get_all")
        if query.all_projects:
            self._policy.authorize(ctx, "container:get_all_all_projects")
        listed = await self._containers.list(ctx, query.all_projects)
        # a cluster-wide list names the nodes that did not answer in time
        partial = listed.partial_nodes
        recs = [r for r in listed.records if _matches(r, query.filters)]
        page = paginate(recs, query, lambda r, k: getattr(r, k, None), lambda r: r.uuid)
        items = [self._container_view(req, r) for r in page]
        next_url = views.next_link(req.base_url, "containers", items, query.limit,
                                   query.sort_key, query.sort_dir)
        body = views.collection("containers", items, next_url)
        if partial:
            return Reply(200, body, {"Zund-Partial-Nodes": ",".join(sorted(partial))})
        return body

    @route("/containers/<ident>", ["GET"])
    async def container_show(self, req: ApiRequest, ident: str):
        ref = self._ref(req, ident, "container:get_one", "container:get_one_all_projects")
        rec = await self._containers.show(req.ctx, ref)
        return self._container_view(req, rec)

    @route("/containers/<ident>", ["DELETE"])
    async def container_delete(self, req: ApiRequest, ident: str):
        force = schemas.optional_bool(req.params, "force", False)
        stop = schemas.optional_bool(req.params, "stop", False)
        if req.version < v("1.12"):
            stop = False  # `stop` exists from 1.12; older clients never mean it
        extra = ("container:delete_force",) if force and req.version >= v("1.7") else ()
        ref = self._ref(req, ident, "container:delete", "container:delete_all_projects",
                        extra_rules=extra)
        await self._containers.delete(req.ctx, ref, force=force, stop=stop)
        return Reply(204)

    @route("/containers/<ident>", ["PATCH"])
    async def container_update(self, req: ApiRequest, ident: str):
        patch = schemas.validate_update(req.body if req.body is not None else {}, self._limits)
        ref = self._ref(req, ident, "container:update")
        rec = await self._containers.update(req.ctx, ref, patch)
        return self._container_view(req, rec)

    # -- containers: asynchronous actions (202, body null) ----------------------------------

    @route("/containers/<ident>/start", ["POST"])
    async def container_start(self, req: ApiRequest, ident: str):
        await self._containers.start(req.ctx, self._ref(req, ident, "container:start"))
        return Reply(202, None)

    @route("/containers/<ident>/stop", ["POST"])
    async def container_stop(self, req: ApiRequest, ident: str):
        timeout = _timeout(req.params)
        await self._containers.stop(req.ctx, self._ref(req, ident, "container:stop"),
                                   timeout_s=timeout)
        return Reply(202, None)

    @route("/containers/<ident>/reboot", ["POST"])
    async def container_reboot(self, req: ApiRequest, ident: str):
        timeout = _timeout(req.params)
        await self._containers.reboot(req.ctx, self._ref(req, ident, "container:reboot"),
                                   timeout_s=timeout)
        return Reply(202, None)

    @route("/containers/<ident>/pause", ["POST"])
    async def container_pause(self, req: ApiRequest, ident: str):
        await self._containers.pause(req.ctx, self._ref(req, ident, "container:pause"))
        return Reply(202, None)

    @route("/containers/<ident>/unpause", ["POST"])
    async def container_unpause(self, req: ApiRequest, ident: str):
        await self._containers.unpause(req.ctx, self._ref(req, ident, "container:unpause"))
        return Reply(202, None)

    @route("/containers/<ident>/kill", ["POST"])
    async def container_kill(self, req: ApiRequest, ident: str):
        signal = schemas.not_none(req.params.get("signal"))
        if signal is not None:
            signal = str(signal)
        await self._containers.kill(req.ctx, self._ref(req, ident, "container:kill"),
                                    signal=signal)
        return Reply(202, None)

    @route("/containers/<ident>/rebuild", ["POST"])
    async def container_rebuild(self, req: ApiRequest, ident: str):
        image = schemas.not_none(req.params.get("image"))
        image_driver = schemas.not_none(req.params.get("image_driver"))
        if image_driver not in (None, "docker", "glance"):
            raise errors.InvalidInput(field="image_driver",
                                      reason=f"{image_driver!r} is not one of docker, glance.")
        if image is not None and (not isinstance(image, str) or len(image) < 2):
            raise errors.InvalidInput(field="image", reason=f"{image!r} is not an image name.")
        await self._containers.rebuild(req.ctx, self._ref(req, ident, "container:rebuild"),
                                       image=image, image_driver=image_driver)
        return Reply(202, None)

    @route("/containers/<ident>/commit", ["POST"])
    async def container_commit(self, req: ApiRequest, ident: str):
        repository = schemas.not_none(req.params.get("repository"))
        tag = schemas.not_none(req.params.get("tag"))
        if not repository or not isinstance(repository, str):
            raise errors.InvalidInput(field="repository", reason="a repository is required.")
        if tag is None and ":" in repository.rsplit("/", 1)[-1]:
            repository, tag = repository.rsplit(":", 1)
        image_id = await self._containers.commit(
            req.ctx, self._ref(req, ident, "container:commit"), repository, tag)
        return Reply(202, {"uuid": image_id})

    @route("/containers/<ident>/resize_container", ["POST"], min_version="1.19")
    async def container_resize_container(self, req: ApiRequest, ident: str):
        cpu = schemas.not_none(req.params.get("cpu"))
        memory = schemas.not_none(req.params.get("memory"))
        if cpu is None and memory is None:
            raise errors.InvalidInput(field="cpu", reason="give cpu and/or memory.")
        cpu = None if cpu is None else schemas.parse_cpu(cpu, self._limits)
        memory = None if memory is None else schemas.parse_memory(memory, self._limits)
        rec = await self._containers.resize_container(
            req.ctx, self._ref(req, ident, "container:resize_container"), cpu=cpu,
            memory=memory)
        return Reply(202, self._container_view(req, rec))

    # -- containers: synchronous actions ------------------------------------------------------

    @route("/containers/<ident>/logs", ["GET"])
    async def container_logs(self, req: ApiRequest, ident: str):
        p = req.params
        stdout = schemas.optional_bool(p, "stdout", True)
        stderr = schemas.optional_bool(p, "stderr", True)
        if not stdout and not stderr:
            stdout = stderr = True  # Zun: asking for neither means both
        timestamps = schemas.optional_bool(p, "timestamps", False)
        tail = schemas.parse_tail(p.get("tail"))
        since = schemas.parse_since(p.get("since"))
        text = await self._containers.logs(
            req.ctx, self._ref(req, ident, "container:logs"), stdout=stdout, stderr=stderr,
            timestamps=timestamps, tail=tail, since=since)
        return text

    @route("/containers/<ident>/execute", ["POST"])
    async def container_execute(self, req: ApiRequest, ident: str):
        p = req.params
        run = schemas.optional_bool(p, "run", True)
        interactive = schemas.optional_bool(p, "interactive", False)
        if "command" not in p or schemas.not_none(p.get("command")) is None:
            raise errors.InvalidInput(field="command", reason="a command is required.")
        argv = schemas.split_command(p["command"])
        ref = self._ref(req, ident, "container:execute")
        if interactive or not run:
            # a TTY exec reached over a websocket (zund.console); Zun: run=false
            if self._console is None:
                await self._containers.find(req.ctx, ref)
                raise errors.InteractiveNotSupported(what="Interactive exec (interactive="
                                                          "true or run=false)")
            self._console.check_capacity()
            opened = await self._containers.console_open(req.ctx, ref, kind="exec", argv=argv)
            return {"output": None, "exit_code": None, "exec_id": opened["exec_id"],
                    "proxy_url": self._console.client_url(req.ctx, opened)}
        result = await self._containers.execute(req.ctx, ref, argv)
        return {"output": result.output, "exit_code": result.exit_code, "exec_id": None,
                "proxy_url": None}

    def _tty_size(self, req: ApiRequest) -> tuple[int, int]:
        size = []
        for field in ("w", "h"):
            raw = req.params.get(field)
            try:
                value = int(raw)
            except (TypeError, ValueError):
                raise errors.InvalidInput(field=field,
                                          reason="an integer number of cells is required.")
            if not 0 < value <= 10000:
                raise errors.InvalidInput(field=field, reason="must be between 1 and 10000.")
            size.append(value)
        return size[0], size[1]

    @route("/containers/<ident>/execute_resize", ["POST"])
    async def container_execute_resize(self, req: ApiRequest, ident: str):
        ref = self._ref(req, ident, "container:execute_resize")
        if self._console is None:
            await self._containers.find(req.ctx, ref)
            raise errors.InteractiveNotSupported(what="Resizing an exec TTY")
        exec_id = schemas.not_none(req.params.get("exec_id"))
        if not isinstance(exec_id, str) or not exec_id:
            raise errors.InvalidInput(field="exec_id", reason="an exec id is required.")
        width, height = self._tty_size(req)
        await self._containers.console_resize(req.ctx, ref, width, height, exec_id=exec_id)
        return Reply(200, None)

    @route("/containers/<ident>/resize", ["POST"])
    async def container_resize(self, req: ApiRequest, ident: str):
        ref = self._ref(req, ident, "container:resize")
        if self._console is None:
            await self._containers.find(req.ctx, ref)
            raise errors.InteractiveNotSupported(what="Resizing a container TTY")
        width, height = self._tty_size(req)
        await self._containers.console_resize(req.ctx, ref, width, height)
        return Reply(200, None)

    @route("/containers/<ident>/attach", ["GET"])
    async def container_attach(self, req: ApiRequest, ident: str):
        ref = self._ref(req, ident, "container:attach")
        if self._console is None:
            await self._containers.find(req.ctx, ref)
            raise errors.InteractiveNotSupported(what="Attaching to a container")
        self._console.check_capacity()
        opened = await self._containers.console_open(req.ctx, ref, kind="attach")
        # Zun answers the websocket URL as a JSON string (zunclient connects to it)
        return self._console.client_url(req.ctx, opened)

    @route("/containers/<ident>/top", ["GET"])
    async def container_top(self, req: ApiRequest, ident: str):
        ps_args = schemas.not_none(req.params.get("ps_args"))
        return await self._containers.top(req.ctx, self._ref(req, ident, "container:top"),
                                          ps_args=ps_args)

    @route("/containers/<ident>/stats", ["GET"])
    async def container_stats(self, req: ApiRequest, ident: str):
        return await self._containers.stats(req.ctx, self._ref(req, ident, "container:stats"))

    @route("/containers/<ident>/get_archive", ["GET"])
    async def container_get_archive(self, req: ApiRequest, ident: str):
        path = schemas.not_none(req.params.get("path"))
        if not path:
            raise errors.InvalidInput(field="path", reason="a path is required.")
        data, stat = await self._containers.get_archive(
            req.ctx, self._ref(req, ident, "container:get_archive"), path)
        if req.version >= v("1.25"):
            encoded = base64.b64encode(data).decode("ascii")
        else:
            encoded = data.decode("latin-1")
        return {"data": encoded, "stat": stat}

    @route("/containers/<ident>/put_archive", ["POST"], body="archive")
    async def container_put_archive(self, req: ApiRequest, ident: str):
        path = schemas.not_none(req.params.get("path"))
        data = req.params.get("data")
        if not path:
            raise errors.InvalidInput(field="path", reason="a path is required.")
        if not isinstance(data, str):
            raise errors.InvalidInput(field="data", reason="a tar archive is required.")
        if req.version >= v("1.25"):
            try:
                raw = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError) as e:
                raise errors.InvalidInput(field="data", reason=f"not base64: {e}.") from e
        else:
            raw = data.encode("latin-1")
        await self._containers.put_archive(
            req.ctx, self._ref(req, ident, "container:put_archive"), path, raw)
        return Reply(200, None)

    @route("/containers/<ident>/rename", ["POST"], max_version="1.13")
    async def container_rename(self, req: ApiRequest, ident: str):
        name = schemas.validate_name(req.params.get("name"))
        rec = await self._containers.update(
            req.ctx, self._ref(req, ident, "container:rename"), {"name": name})
        return self._container_view(req, rec)

    @route("/containers/<ident>/network_list", ["GET"], min_version="1.13")
    async def container_network_list(self, req: ApiRequest, ident: str):
        rec = await self._containers.find(req.ctx,
                                          self._ref(req, ident, "container:network_list"))
        return {"networks": _networks(rec.addresses or {}, req.version >= v("1.18"))}

    async def _refuse_once_found(self, req: ApiRequest, ident: str, rule: str, field: str,
                                 message: str):
        """A feature zund does not have: the container must exist and the caller be
        allowed (404/403 as for any action), then a 400 naming ``field``."""
        await self._containers.find(req.ctx, self._ref(req, ident, rule))
        raise errors.InvalidInput(message=message, field=field)

    def _net_param(self, req: ApiRequest, name: str) -> str | None:
        value = schemas.not_none(req.params.get(name))
        if value is not None and (not isinstance(value, str) or not 1 <= len(value) <= 255):
            raise schemas.invalid(name, "must be a name or id of 1-255 characters.")
        return value

    @route("/containers/<ident>/network_attach", ["POST"], min_version="1.8")
    async def container_network_attach(self, req: ApiRequest, ident: str):
        rule = "container:network_attach"
        if self.networks is None:
            await self._refuse_once_found(req, ident, rule, "network",
                                          "network_attach is not supported by this cloud "
                                          "([network] driver = none).")
        network, port = self._net_param(req, "network"), self._net_param(req, "port")
        fixed_ip = self._net_param(req, "fixed_ip")
        if not network and not port:
            raise schemas.invalid("network", "network or port is required.")
        args = {}
        if network:
            args["network"] = (await self.networks.get_network(req.ctx, network)).id
        if port:
            args["port"] = port
        if fixed_ip:
            try:
                args["v4-fixed-ip"] = str(ipaddress.IPv4Address(fixed_ip))
            except ValueError:
                raise schemas.invalid("fixed_ip", f"{fixed_ip!r} is not an IPv4 "
                                                  "address.") from None
        await self._network_ref_action(req, ident, rule, "attach", args)
        return Reply(200, None)

    @route("/containers/<ident>/network_detach", ["POST"], min_version="1.6")
    async def container_network_detach(self, req: ApiRequest, ident: str):
        rule = "container:network_detach"
        if self.networks is None:
            await self._refuse_once_found(req, ident, rule, "network",
                                          "network_detach is not supported by this cloud "
                                          "([network] driver = none).")
        network = self._net_param(req, "network")
        port = self._net_param(req, "port") if req.version >= v("1.17") else None
        if not network and not port:
            raise schemas.invalid("network", "network (or, from 1.17, port) is required.")
        args = {}
        if network:
            args["network"] = (await self.networks.get_network(req.ctx, network)).id
        if port:
            args["port"] = port
        await self._network_ref_action(req, ident, rule, "detach", args)
        return Reply(200, None)

    async def _security_group(self, req: ApiRequest, ident: str, rule: str, key: str):
        if self.networks is None:
            await self._refuse_once_found(req, ident, rule, "name",
                                          "Security groups are not supported by this cloud "
                                          "([network] driver = none).")
        name = self._net_param(req, "name")
        if not name:
            raise schemas.invalid("name", "a security group name is required.")
        await self._network_ref_action(req, ident, rule, "security_groups", {key: [name]})
        return Reply(202, None)

    @route("/containers/<ident>/add_security_group", ["POST"], max_version="1.14")
    async def container_add_security_group(self, req: ApiRequest, ident: str):
        return await self._security_group(req, ident, "container:add_security_group", "add")

    @route("/containers/<ident>/remove_security_group", ["POST"], max_version="1.14")
    async def container_remove_security_group(self, req: ApiRequest, ident: str):
        return await self._security_group(req, ident, "container:remove_security_group",
                                          "remove")

    @route("/containers/<ident>/container_actions", ["GET"])
    async def container_actions(self, req: ApiRequest, ident: str):
        acts = await self._containers.list_actions(
            req.ctx, self._ref(req, ident, "container:actions"))
        return {"containerActions": [views.action(a, req.version) for a in acts]}

    @route("/containers/<ident>/container_actions/<request_id>", ["GET"])
    async def container_action_show(self, req: ApiRequest, ident: str, request_id: str):
        # the owner blanks the tracebacks unless container:action:events allows
        # them on the record
        act = await self._containers.get_action(
            req.ctx, self._ref(req, ident, "container:actions"), request_id)
        return views.action_with_events(act, req.version, show_traceback=True)


_GREEK = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
          "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau",
          "upsilon", "phi", "chi", "psi", "omega")

def _matches(rec, filters: dict) -> bool:
    for key, wanted in filters.items():
        value = getattr(rec, key, None)
        if key == "memory":
            if value is None or str(value) != str(wanted):
                return False
        elif key == "auto_remove":
            if bool(value) != wanted:
                return False
        elif value != wanted:
            return False
    return True


def _timeout(params: dict) -> float | None:
    value = schemas.not_none(params.get("timeout"))
    if value is None:
        return None
    return float(schemas.parse_int(value, "timeout", minimum=0))


def _networks(addresses: dict, nested: bool) -> list[dict]:
    out = []
    for net_id, addrs in addresses.items():
        if nested:
            out.append({"net_id": net_id,
                        "port_id": addrs[0].get("port") if addrs else None,
                        "fixed_ips": [{"subnet_id": a.get("subnet_id"),
                                       "version": a.get("version"),
                                       "ip_address": a.get("addr")} for a in addrs]})
        else:
            for a in addrs:
                out.append({"net_id": net_id, "subnet_id": a.get("subnet_id"),
                            "port_id": a.get("port"), "version": a.get("version"),
                            "ip_address": a.get("addr")})
    return out
