"""The tenant matrix (issue 9 item 6): a 3-node cluster of real ``zund serve``
processes (fake runtime) with ``auth_strategy = keystone`` against the run's real
Keystone, and real tokens — one per user, issued once.

* A container and a private registry of project A (created by a-member) cannot be
  reached by b-member through ANY node, by uuid or by name, with or without forged
  identity headers or ``all_projects``, on EVERY ``/v1/containers/<ident>…`` and
  ``/v1/registries/<ident>`` route (derived from the Klein url_map, so a new route
  is covered or this file fails); each attempt is 403 or 404 naming the object or
  the rule — never 2xx, never 5xx — and A's objects are untouched afterwards.
  A control test sends the same requests as A's member to A's own objects: none
  is a 403/404, so each denial is the tenant rule's, not a malformed request's.
* Zun's roles with Keystone's personas: a-reader may look, not act (403 naming the
  rule); a-member acts on its project through any node; a-admin may use
  ``all_projects``, ``/v1/hosts`` and ``/v1/services``; a forged ``X-Roles: admin``
  changes nothing. Quotas: another project's member can neither read nor change
  project A's; images are admin-only.
* Every route of the API is in these tables or explicitly public.

Needs the run's Keystone (``ZUND_KEYSTONE_ENV``, tools/run-tests.sh); no dockerd.
"""

from __future__ import annotations

import base64
import io
import shutil
import tarfile

import attrs
import pytest

from zund.api import policy
from zund.api.app import ZunAPI  # noqa: F401  (registers every resource's routes)
from zund.api.pipeline import APP

from .keystone import real_keystone  # noqa: F401  (fixture)
from .tenant_cluster import (
    Answer,
    Caller,
    call,
    error_detail,
    issue_callers,
    run_parallel,
    start_keystone_cluster,
    wait_until,
    warm_tokens,
)

TEST_IMAGE = "zund-test/busybox:latest"  # the fake runtime's local image
USERS = (("a-admin", "project-a"), ("a-member", "project-a"), ("a-reader", "project-a"),
         ("b-member", "project-b"))
VICTIM_NAME = "tm-victim"
REGISTRY_NAME = "tm-a-registry"


def _tar(name: str) -> str:
    """A base64 tar holding one file ``name`` (put_archive's body from 1.25)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"planted by another project\n"
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return base64.b64encode(buf.getvalue()).decode("ascii")


@attrs.frozen
class Row:
    """How the matrix calls one tenant route, and who may call it (Zun's
    defaults with Keystone's personas: ``look`` rows are open to readers)."""

    rule: str
    query: dict = attrs.field(factory=dict)
    body: dict | None = None
    version: str = "1.40"
    look: bool = False


#: every route under /v1/containers/<ident>, keyed as the url_map spells it
#: (without /v1). The bodies are valid, so a denial is the tenant rule's, never
#: the schema's; each would change or reveal the container if it were obeyed.
CONTAINER_ROWS: dict[tuple[str, str], Row] = {
    ("GET", "/containers/<ident>"): Row("container:get_one", look=True),
    ("DELETE", "/containers/<ident>"): Row("container:delete", query={"stop": "true"}),
    ("PATCH", "/containers/<ident>"): Row("container:update",
                                          body={"cpu": 0.2, "name": "stolen-patch"}),
    ("POST", "/containers/<ident>/start"): Row("container:start"),
    ("POST", "/containers/<ident>/stop"): Row("container:stop", query={"timeout": "1"}),
    ("POST", "/containers/<ident>/reboot"): Row("container:reboot", query={"timeout": "1"}),
    ("POST", "/containers/<ident>/pause"): Row("container:pause"),
    ("POST", "/containers/<ident>/unpause"): Row("container:unpause"),
    ("POST", "/containers/<ident>/kill"): Row("container:kill", query={"signal": "SIGKILL"}),
    ("POST", "/containers/<ident>/rebuild"): Row("container:rebuild",
                                                 body={"image": TEST_IMAGE}),
    ("POST", "/containers/<ident>/commit"): Row("container:commit",
                                                body={"repository": "stolen/commit",
                                                      "tag": "x"}),
    ("POST", "/containers/<ident>/resize_container"): Row(
        "container:resize_container", body={"cpu": 0.3, "memory": "48"}),
    ("GET", "/containers/<ident>/logs"): Row("container:logs"),
    ("POST", "/containers/<ident>/execute"): Row(
        "container:execute", body={"command": "touch /stolen-exec", "run": True}),
    ("POST", "/containers/<ident>/execute_resize"): Row(
        "container:execute_resize", body={"exec_id": "x", "w": 80, "h": 24}),
    ("POST", "/containers/<ident>/resize"): Row("container:resize", body={"w": 80, "h": 24}),
    ("GET", "/containers/<ident>/attach"): Row("container:attach"),
    ("GET", "/containers/<ident>/top"): Row("container:top", look=True),
    ("GET", "/containers/<ident>/stats"): Row("container:stats", look=True),
    ("GET", "/containers/<ident>/get_archive"): Row("container:get_archive",
                                                    query={"path": "/etc"}),
    ("POST", "/containers/<ident>/put_archive"): Row(
        "container:put_archive", body={"path": "/", "data": _tar("stolen-archive")}),
    ("POST", "/containers/<ident>/rename"): Row("container:rename",
                                                body={"name": "stolen-rename"},
                                                version="1.13"),
    ("GET", "/containers/<ident>/network_list"): Row("container:network_list", look=True),
    ("POST", "/containers/<ident>/network_attach"): Row("container:network_attach",
                                                        query={"network": "stolen"}),
    ("POST", "/containers/<ident>/network_detach"): Row("container:network_detach",
                                                        query={"network": "stolen"}),
    ("POST", "/containers/<ident>/add_security_group"): Row(
        "container:add_security_group", query={"name": "stolen"}, version="1.14"),
    ("POST", "/containers/<ident>/remove_security_group"): Row(
        "container:remove_security_group", query={"name": "stolen"}, version="1.14"),
    ("GET", "/containers/<ident>/container_actions"): Row("container:actions", look=True),
    ("GET", "/containers/<ident>/container_actions/<request_id>"): Row(
        "container:actions", look=True),
}

#: every route under /v1/registries/<ident> (private registries, 1.30)
REGISTRY_ROWS: dict[tuple[str, str], Row] = {
    ("GET", "/registries/<ident>"): Row("registry:get_one", look=True),
    ("PATCH", "/registries/<ident>"): Row(
        "registry:update", body={"registry": {"username": "stolen", "password": "stolen"}}),
    ("DELETE", "/registries/<ident>"): Row("registry:delete"),
}

#: the matrix: every route about one tenant-owned object
TENANT_ROWS = {**CONTAINER_ROWS, **REGISTRY_ROWS}
TENANT_PREFIXES = ("/containers/<ident>", "/registries/<ident>")

#: tenant routes the matrix cannot exercise, with the reason (none today)
TENANT_EXEMPT: dict[tuple[str, str], str] = {}

#: the other routes, and the test of this module that covers each
OTHER_ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/containers"): "test_other_project_never_lists_the_container / admin",
    ("POST", "/containers"): "fixtures (a-member, b-member) / reader create is 403",
    ("GET", "/hosts"): "test_admin_only_routes",
    ("GET", "/hosts/<ident>"): "test_admin_only_routes",
    ("GET", "/services"): "test_admin_only_routes",
    ("PUT", "/services/<action>"): "test_admin_only_routes",
    ("GET", "/availability_zones"): "test_reader_may_look_but_not_act",
    ("GET", "/images"): "test_images_are_admin_only",
    ("POST", "/images"): "test_images_are_admin_only",
    ("GET", "/images/<ident>"): "test_images_are_admin_only",
    ("DELETE", "/images/<ident>"): "test_images_are_admin_only",
    ("GET", "/images/<path:image>/search"): "test_images_are_admin_only",
    ("GET", "/quotas/<project_id>"): "test_quotas_of_another_project",
    ("PUT", "/quotas/<project_id>"): "test_quotas_of_another_project",
    ("DELETE", "/quotas/<project_id>"): "test_quotas_of_another_project",
    ("GET", "/quotas/<project_id>/defaults"): "test_quotas_of_another_project",
    ("GET", "/quota_classes/<name>"): "test_quotas_of_another_project",
    ("PUT", "/quota_classes/<name>"): "test_quotas_of_another_project",
    ("GET", "/registries"): "test_other_project_never_lists_the_container",
    ("POST", "/registries"): "fixture a_registry / test_reader_may_look_but_not_act",
    # tenant networks (issue 16): this cluster runs [network] driver = none (400);
    # their matrix is test_network_tenant_matrix.py (a keystone cluster with
    # [network] driver = vxlan: through every node, by uuid and name, forged headers)
    ("GET", "/networks"): "test_network_tenant_matrix (b-member lists)",
    ("POST", "/networks"): "test_network_tenant_matrix (reader 403, shared admin-only)",
    ("GET", "/networks/<ident>"): "test_network_tenant_matrix (b-member 404)",
    ("DELETE", "/networks/<ident>"): "test_network_tenant_matrix (b-member 404)",
}

#: need no token (zund/api/resources/discovery.py)
PUBLIC_ROUTES = {("GET", "/"), ("GET", "/v1"), ("GET", "/healthcheck")}


def api_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the Klein app serves, spelled without the
    ``/v1`` prefix and the trailing slash; HEAD/OPTIONS come with GET."""
    out = set()
    for rule in APP.url_map.iter_rules():
        path = rule.rule
        if path.startswith("/v1/"):
            path = path[len("/v1"):]
        path = path.rstrip("/") or "/"
        for method in set(rule.methods) - {"HEAD", "OPTIONS"}:
            out.add((method, path))
    return out


def test_every_route_is_in_the_matrix_or_exempt():
    """Each API route is a matrix row, an exempted tenant route, another route
    covered here, or public — a new route fails this test until it is listed."""
    routes = api_routes()
    tenant = {r for r in routes if r[1].startswith(TENANT_PREFIXES)}
    assert tenant == set(TENANT_ROWS) | set(TENANT_EXEMPT)
    assert not set(TENANT_ROWS) & set(TENANT_EXEMPT)
    assert routes - tenant == set(OTHER_ROUTES) | PUBLIC_ROUTES
    declared = {rule.name for rule in policy.list_rules()}
    assert {row.rule for row in TENANT_ROWS.values()} <= declared


# -- the cluster, its callers and project A's objects ------------------------------------


@pytest.fixture(scope="module")
def callers(real_keystone) -> dict[str, Caller]:  # noqa: F811
    return issue_callers(real_keystone, USERS)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory, real_keystone, callers):  # noqa: F811
    workdir = tmp_path_factory.mktemp("tenant")
    started = start_keystone_cluster(str(workdir), real_keystone, callers["a-admin"])
    try:
        warm_tokens(started, callers.values())
    except BaseException:
        for node in started:
            node.kill9()
        raise
    yield started
    codes = []
    for node in started:
        try:
            codes.append(node.terminate())
        except Exception:
            node.kill9()
            codes.append("killed")
    shutil.rmtree(workdir, ignore_errors=True)
    assert codes == [0] * len(started), codes


def create_running(node, caller: Caller, name: str) -> dict:
    """A running container of ``caller``'s project, created through ``node``."""
    r = call(node, caller, "POST", "/containers", query={"run": "true"}, body={
        "name": name, "image": TEST_IMAGE, "cpu": 0.1, "memory": "32",
        "command": ["sh", "-c", "echo started; while true; do sleep 1; done"]})
    assert r.status == 202, r
    uuid = r.body["uuid"]

    def running():
        shown = call(node, caller, "GET", f"/containers/{uuid}")
        ok = shown.status == 200 and shown.body["status"] == "Running" \
            and shown.body["task_state"] is None
        return shown.body if ok else None

    return wait_until(running, 60, f"{name} running")


@pytest.fixture(scope="module")
def victim(nodes, callers) -> dict:
    """Project A's container, created by a-member through node 1."""
    return create_running(nodes[0], callers["a-member"], VICTIM_NAME)


@pytest.fixture(scope="module")
def a_registry(nodes, callers) -> dict:
    """Project A's private registry (with a password), created by a-member
    through node 2."""
    r = call(nodes[1], callers["a-member"], "POST", "/registries", body={"registry": {
        "name": REGISTRY_NAME, "domain": "registry.a.example", "username": "a-robot",
        "password": "a-secret"}})
    assert r.status == 202, r
    return r.body["registry"]


@pytest.fixture(scope="module")
def b_own(nodes, callers) -> dict:
    """b-member's own container (project B), created through node 3."""
    return create_running(nodes[2], callers["b-member"], "tm-b-own")


@attrs.frozen
class Snapshot:
    container: dict
    actions: tuple
    registry: dict
    images: tuple  # (repo, tag) of every image record: a commit would add one


WATCHED = ("uuid", "name", "status", "task_state", "cpu", "memory", "project_id", "host",
           "command", "environment", "labels")
WATCHED_REGISTRY = ("uuid", "name", "domain", "username", "project_id")


def snapshot(node, callers, victim, registry) -> Snapshot:
    """Project A's objects as its admin sees them (the host included)."""
    admin = callers["a-admin"]
    shown = call(node, admin, "GET", f"/containers/{victim['uuid']}")
    assert shown.status == 200, shown
    acts = call(node, admin, "GET", f"/containers/{victim['uuid']}/container_actions")
    assert acts.status == 200, acts
    reg = call(node, admin, "GET", f"/registries/{registry['uuid']}")
    assert reg.status == 200, reg
    images = call(node, admin, "GET", "/images")
    assert images.status == 200, images
    return Snapshot(container={k: shown.body.get(k) for k in WATCHED},
                    actions=tuple(sorted((a["action"], a["request_id"])
                                         for a in acts.body["containerActions"])),
                    registry={k: reg.body["registry"].get(k) for k in WATCHED_REGISTRY},
                    images=tuple(sorted((str(i["repo"]), str(i["tag"]))
                                        for i in images.body["images"])))


def assert_untouched(nodes, callers, victim, registry, before: Snapshot) -> None:
    """Same record, same actions, same registry, and no file planted by an exec
    or put_archive (asked last: the owner's own exec is an action)."""
    assert snapshot(nodes[0], callers, victim, registry) == before
    listing = call(nodes[0], callers["a-member"], "POST",
                   f"/containers/{victim['uuid']}/execute",
                   body={"command": "ls /", "run": True})
    assert listing.status == 200, listing
    assert "stolen" not in listing.body["output"], listing.body


def create_request_id(nodes, callers, victim) -> str:
    acts = call(nodes[0], callers["a-member"], "GET",
                f"/containers/{victim['uuid']}/container_actions")
    assert acts.status == 200, acts
    return next(a["request_id"] for a in acts.body["containerActions"]
                if a["action"] == "create")


def row_path(route: str, ident: str, request_id: str) -> str:
    return route.replace("<ident>", ident).replace("<request_id>", request_id)


def target_of(route: str, victim: dict, registry: dict) -> dict:
    return registry if route.startswith("/registries/") else victim


def denial_problem(answer: Answer, ident: str) -> str | None:
    """None when ``answer`` is a tenant denial: 404 naming the object, or 403
    naming a policy rule; else what is wrong with it."""
    detail = error_detail(answer)
    if answer.status == 404 and "could not be found" in detail and ident in detail:
        return None
    if answer.status == 403 and "Policy doesn't allow" in detail:
        return None
    return f"{answer.status} {detail or answer.body!r}"[:300]


def forged_headers(callers) -> dict:
    """What a member of B might send to pass for an admin of project A."""
    a = callers["a-admin"]
    return {"X-Roles": "admin,member,reader", "X-Project-Id": a.project_id,
            "X-User-Id": a.user_id, "X-Project-Name": "project-a", "X-Is-Admin-Project": "True",
            "X-Identity-Status": "Confirmed", "X-Service-Roles": "admin",
            "X-Service-Identity-Status": "Confirmed"}


# -- the matrix ----------------------------------------------------------------------------


def test_other_project_is_denied_every_tenant_route_on_every_node(
        nodes, callers, victim, a_registry, b_own):
    """b-member, through each node, by uuid and by name, plain / with forged admin
    headers of project A / with all_projects: every route about project A's
    container or registry is 403 or 404, creating a container from A's registry
    is refused, and A's objects are untouched (record, actions, files, registry)."""
    intruder = callers["b-member"]
    request_id = create_request_id(nodes, callers, victim)
    before = snapshot(nodes[0], callers, victim, a_registry)
    forged = forged_headers(callers)
    variants = {"uuid": ("uuid", {}, {}), "name": ("name", {}, {}),
                "uuid+forged": ("uuid", forged, {}), "name+forged": ("name", forged, {}),
                "uuid+all_projects": ("uuid", {}, {"all_projects": "true"})}
    cells = []
    for i, node in enumerate(nodes, 1):
        for variant, (key, headers, extra_query) in variants.items():
            for (method, route), row in TENANT_ROWS.items():
                ident = target_of(route, victim, a_registry)[key]
                cells.append((f"node{i} {variant} {method} {route}", node, method,
                              row_path(route, ident, request_id), ident, headers,
                              {**row.query, **extra_query}, row))

    def attempt(cell):
        _, node, method, path, ident, headers, query, row = cell
        answer = call(node, intruder, method, path, version=row.version, query=query,
                      body=row.body, headers=headers)
        return denial_problem(answer, ident)

    problems = run_parallel([(c[1].name, lambda c=c: attempt(c)) for c in cells])
    leaks = [f"{c[0]}: {p}" for c, p in zip(cells, problems) if p]
    assert not leaks, f"{len(leaks)} of {len(cells)} attempts not denied:\n" + "\n".join(leaks)
    for node in nodes:
        for ident in (a_registry["uuid"], a_registry["name"]):
            used = call(node, intruder, "POST", "/containers", body={
                "name": "tm-b-borrowed", "image": TEST_IMAGE, "registry": ident})
            assert used.status == 400 and "could not be found" in error_detail(used), used
    assert_untouched(nodes, callers, victim, a_registry, before)


def test_matrix_requests_pass_the_tenant_checks_for_the_owner(nodes, callers):
    """Control for the matrix: the very same requests, sent by project A's member
    for a container and a registry of its own through another node, are never a
    403/404 (a conflict, 400 "not supported" or 501 is the route's own answer), so
    each denial above is the tenant rule's and not a malformed request's."""
    member = callers["a-member"]
    container = create_running(nodes[1], member, "tm-control")
    created = call(nodes[1], member, "POST", "/registries", body={"registry": {
        "name": "tm-control-registry", "domain": "control.a.example"}})
    assert created.status == 202, created
    registry = created.body["registry"]
    request_id = create_request_id(nodes, callers, container)
    # deletes last; everything else in the table's order, one at a time
    rows = sorted(TENANT_ROWS.items(), key=lambda item: item[0][0] == "DELETE")
    wrong = []
    for (method, route), row in rows:
        ident = target_of(route, container, registry)["uuid"]
        answer = call(nodes[2], member, method, row_path(route, ident, request_id),
                      version=row.version, query=row.query, body=row.body)
        detail = error_detail(answer)
        if answer.status in (403, 404) or "could not be found" in detail \
                or "Policy doesn't allow" in detail:
            wrong.append(f"{method} {route}: {answer.status} {detail or answer.body!r}")
    assert not wrong, "\n".join(wrong)
    wait_until(lambda: call(nodes[0], member, "GET", f"/containers/{container['uuid']}")
               .status == 404, 60, "tm-control gone")


def test_other_project_never_lists_the_container(nodes, callers, victim, a_registry, b_own):
    """b-member's container and registry lists through each node hold project B's
    own only (forged headers change nothing); all_projects is 403 naming the rule."""
    intruder = callers["b-member"]
    for node in nodes:
        for headers in ({}, forged_headers(callers)):
            listed = call(node, intruder, "GET", "/containers", headers=headers)
            assert listed.status == 200, listed
            assert [c["uuid"] for c in listed.body["containers"]] == [b_own["uuid"]]
            everyone = call(node, intruder, "GET", "/containers",
                            query={"all_projects": "1"}, headers=headers)
            assert everyone.status == 403, everyone
            assert "container:get_all_all_projects" in error_detail(everyone)
            regs = call(node, intruder, "GET", "/registries", headers=headers)
            assert regs.status == 200 and regs.body["registries"] == [], regs
            all_regs = call(node, intruder, "GET", "/registries",
                            query={"all_projects": "1"}, headers=headers)
            assert all_regs.status == 403, all_regs
            assert "registry:get_all_all_projects" in error_detail(all_regs)


def test_reader_may_look_but_not_act(nodes, callers, victim, a_registry):
    """a-reader, through each node: the look rows answer 200, every other tenant
    route 403 naming its rule, creating a container or registry 403; project A's
    objects are untouched."""
    reader = callers["a-reader"]
    request_id = create_request_id(nodes, callers, victim)
    before = snapshot(nodes[0], callers, victim, a_registry)
    cells = [(f"node{i} {method} {route}", node,
              method, row_path(route, target_of(route, victim, a_registry)["uuid"],
                               request_id), row)
             for i, node in enumerate(nodes, 1)
             for (method, route), row in TENANT_ROWS.items()]

    def attempt(cell):
        _, node, method, path, row = cell
        answer = call(node, reader, method, path, version=row.version, query=row.query,
                      body=row.body)
        if row.look:
            return None if answer.status == 200 else f"{answer.status} {answer.body!r}"[:300]
        if answer.status == 403 and row.rule in error_detail(answer):
            return None
        return f"{answer.status} {error_detail(answer) or answer.body!r}"[:300]

    problems = run_parallel([(c[1].name, lambda c=c: attempt(c)) for c in cells])
    wrong = [f"{c[0]}: {p}" for c, p in zip(cells, problems) if p]
    assert not wrong, "\n".join(wrong)
    for node in nodes:
        listed = call(node, reader, "GET", "/containers")
        assert listed.status == 200 and [c["uuid"] for c in listed.body["containers"]] == [
            victim["uuid"]], listed
        regs = call(node, reader, "GET", "/registries")
        assert regs.status == 200 and [r["uuid"] for r in regs.body["registries"]] == [
            a_registry["uuid"]], regs
        assert all(r["password"] != "a-secret" for r in regs.body["registries"])
        zones = call(node, reader, "GET", "/availability_zones")
        assert zones.status == 200, zones
        created = call(node, reader, "POST", "/containers", body={"image": TEST_IMAGE})
        assert created.status == 403 and "container:create" in error_detail(created), created
        reg = call(node, reader, "POST", "/registries",
                   body={"registry": {"domain": "reader.example"}})
        assert reg.status == 403 and "registry:create" in error_detail(reg), reg
    assert_untouched(nodes, callers, victim, a_registry, before)


def test_member_acts_on_its_project_through_any_node(nodes, callers, victim):
    """a-member: the container created through node 1 is shown by name, logged and
    exec'd through every node; a second one is stopped through node 2 and deleted
    through node 3."""
    member = callers["a-member"]
    for node in nodes:
        shown = call(node, member, "GET", f"/containers/{VICTIM_NAME}")
        assert shown.status == 200 and shown.body["uuid"] == victim["uuid"], shown
        logs = call(node, member, "GET", f"/containers/{victim['uuid']}/logs")
        assert logs.status == 200 and "started" in str(logs.body), logs
        ran = call(node, member, "POST", f"/containers/{VICTIM_NAME}/execute",
                   body={"command": "echo hello", "run": True})
        assert ran.status == 200 and ran.body["output"].strip() == "hello", ran
    other = create_running(nodes[0], member, "tm-a-second")
    stopped = call(nodes[1], member, "POST", f"/containers/{other['uuid']}/stop",
                   query={"timeout": "1"})
    assert stopped.status == 202, stopped
    wait_until(lambda: call(nodes[1], member, "GET", f"/containers/{other['uuid']}").body
               .get("status") == "Stopped", 60, "tm-a-second stopped")
    deleted = call(nodes[2], member, "DELETE", f"/containers/{other['uuid']}")
    assert deleted.status == 204, deleted
    wait_until(lambda: call(nodes[0], member, "GET", f"/containers/{other['uuid']}")
               .status == 404, 60, "tm-a-second gone")


#: (path, query, rule) of the admin-only reads
ADMIN_ONLY = (("/hosts", None, "host:get_all"), ("/services", None, "zun-service:get_all"),
              ("/containers", {"all_projects": "1"}, "container:get_all_all_projects"))


def test_admin_only_routes(nodes, callers, victim, b_own):
    """a-admin lists every project's containers (and shows project B's with
    all_projects), the hosts (and one host) and the services, and may update a
    service, through each node; members (even with forged admin headers) and
    readers get 403 naming the rule."""
    admin = callers["a-admin"]
    for node in nodes:
        everyone = call(node, admin, "GET", "/containers", query={"all_projects": "1"})
        assert everyone.status == 200, everyone
        assert {victim["uuid"], b_own["uuid"]} <= {c["uuid"] for c in everyone.body[
            "containers"]}
        other = call(node, admin, "GET", f"/containers/{b_own['uuid']}",
                     query={"all_projects": "1"})
        assert other.status == 200 and other.body["project_id"] == callers[
            "b-member"].project_id, other
        hosts = call(node, admin, "GET", "/hosts")
        assert hosts.status == 200 and len(hosts.body["hosts"]) == 3, hosts
        one = call(node, admin, "GET", f"/hosts/{hosts.body['hosts'][0]['uuid']}")
        assert one.status == 200, one
        services = call(node, admin, "GET", "/services")
        assert services.status == 200 and services.body["services"], services
        for user, headers in (("a-member", {}), ("a-reader", {}), ("b-member", {}),
                              ("b-member", forged_headers(callers))):
            for path, query, rule in ADMIN_ONLY + (
                    (f"/hosts/{hosts.body['hosts'][0]['uuid']}", None, "host:get"),):
                denied = call(node, callers[user], "GET", path, query=query,
                              headers=headers)
                assert denied.status == 403 and rule in error_detail(denied), (
                    user, headers, path, denied)
            disable = call(node, callers[user], "PUT", "/services/disable",
                           body={"host": node.name, "disabled_reason": "stolen"},
                           headers=headers)
            assert disable.status == 403 and "zun-service:update" in error_detail(
                disable), (user, headers, disable)
        # enabling an enabled service changes nothing; the admin passes the policy
        # (501 until the service tree gives the API its service admin)
        enable = call(node, admin, "PUT", "/services/enable", body={"host": node.name})
        assert enable.status in (200, 501), enable


def test_quotas_of_another_project(nodes, callers):
    """b-member can neither read nor change project A's quotas (nor quota
    classes) through any node; a-member reads its own; only admins change them."""
    intruder, member, admin = callers["b-member"], callers["a-member"], callers["a-admin"]
    a_project = member.project_id
    for node in nodes:
        q = f"/quotas/{a_project}"
        attempts = [("GET", q, None, "quota:get"),
                    ("GET", q + "?usages=true", None, "quota:get"),
                    ("GET", q + "/defaults", None, "quota:get_default"),
                    ("PUT", q, {"containers": 1000}, "quota:update"),
                    ("DELETE", q, None, "quota:delete"),
                    ("GET", "/quota_classes/default", None, "quota_class:get"),
                    ("PUT", "/quota_classes/default", {"containers": 1000},
                     "quota_class:update")]
        for headers in ({}, forged_headers(callers)):
            for method, path, body, rule in attempts:
                denied = call(node, intruder, method, path, body=body, headers=headers)
                assert denied.status == 403 and rule in error_detail(denied), (
                    path, headers, denied)
        own = call(node, member, "GET", q)
        assert own.status == 200 and own.body["containers"] == 40, own
        change = call(node, member, "PUT", q, body={"containers": 1000})
        assert change.status == 403 and "quota:update" in error_detail(change), change
        assert call(node, admin, "GET", f"/quotas/{intruder.project_id}").status == 200
    assert call(nodes[0], member, "GET", f"/quotas/{a_project}").body["containers"] == 40


def test_images_are_admin_only(nodes, callers):
    """Every image route is 403 for members and readers of either project (forged
    headers included) through each node; a-admin lists images."""
    some = "00000000-0000-0000-0000-000000000000"
    attempts = [("GET", "/images", None, "image:get_all"),
                ("POST", "/images", {"repo": TEST_IMAGE}, "image:pull"),
                ("GET", f"/images/{some}", None, "image:get_one"),
                ("DELETE", f"/images/{some}", None, "image:delete"),
                ("GET", "/images/busybox/search", None, "image:search")]
    for node in nodes:
        for user, headers in (("a-member", {}), ("a-reader", {}), ("b-member", {}),
                              ("b-member", forged_headers(callers))):
            for method, path, body, rule in attempts:
                denied = call(node, callers[user], method, path, body=body, headers=headers)
                assert denied.status == 403 and rule in error_detail(denied), (
                    user, path, denied)
        listed = call(node, callers["a-admin"], "GET", "/images")
        assert listed.status == 200 and "images" in listed.body, listed


# -- the compute (Nova) API: the same cluster, its own url_map ------------------------------

from zund.api.nova.app import NovaAPI  # noqa: E402,F401  (registers every compute route)
from zund.api.nova.pipeline import NOVA_APP  # noqa: E402
from zund.api.nova.servers import _ACTIONS as NOVA_SERVER_ACTIONS  # noqa: E402

from .tenant_cluster import nova_call, nova_fault  # noqa: E402


@attrs.frozen
class NovaRow:
    """One compute API call about a server (or a flavor write), and its rule."""

    rule: str
    body: dict | None = None


#: every route under /servers/<ident>, and each action of POST .../action
NOVA_SERVER_ROWS: dict[tuple[str, str], NovaRow] = {
    ("GET", "/servers/<ident>"): NovaRow("container:get_one"),
    ("PUT", "/servers/<ident>"): NovaRow("container:rename",
                                         {"server": {"name": "stolen-nova"}}),
    ("DELETE", "/servers/<ident>"): NovaRow("container:delete"),
    ("POST", "/servers/<ident>/action os-stop"): NovaRow("container:stop", {"os-stop": None}),
    ("POST", "/servers/<ident>/action os-start"): NovaRow("container:start",
                                                          {"os-start": None}),
    ("POST", "/servers/<ident>/action reboot"): NovaRow("container:reboot",
                                                        {"reboot": {"type": "HARD"}}),
    ("POST", "/servers/<ident>/action pause"): NovaRow("container:pause", {"pause": None}),
    ("POST", "/servers/<ident>/action unpause"): NovaRow("container:unpause",
                                                         {"unpause": None}),
    ("POST", "/servers/<ident>/action os-getConsoleOutput"): NovaRow(
        "container:logs", {"os-getConsoleOutput": {"length": 5}}),
}

#: flavor writes: administrators only (Nova's rules)
NOVA_FLAVOR_ADMIN_ROWS: dict[tuple[str, str], NovaRow] = {
    ("POST", "/flavors"): NovaRow("os_compute_api:os-flavor-manage:create", {"flavor": {
        "name": "stolen-flavor", "ram": 64, "vcpus": 1, "disk": 0}}),
    ("DELETE", "/flavors/<ident>"): NovaRow("os_compute_api:os-flavor-manage:delete"),
    ("POST", "/flavors/<ident>/os-extra_specs"): NovaRow(
        "os_compute_api:os-flavor-extra-specs:create", {"extra_specs": {"stolen": "x"}}),
    ("PUT", "/flavors/<ident>/os-extra_specs/<key>"): NovaRow(
        "os_compute_api:os-flavor-extra-specs:update", {"tm-key": "stolen"}),
    ("DELETE", "/flavors/<ident>/os-extra_specs/<key>"): NovaRow(
        "os_compute_api:os-flavor-extra-specs:delete"),
    ("GET", "/flavors/<ident>/os-flavor-access"): NovaRow("os_compute_api:os-flavor-access"),
    ("POST", "/flavors/<ident>/action addTenantAccess"): NovaRow(
        "os_compute_api:os-flavor-access:add_tenant_access",
        {"addTenantAccess": {"tenant": "stolen"}}),
    ("POST", "/flavors/<ident>/action removeTenantAccess"): NovaRow(
        "os_compute_api:os-flavor-access:remove_tenant_access",
        {"removeTenantAccess": {"tenant": "stolen"}}),
}

#: the other compute routes, and the test of this module that covers each
NOVA_OTHER_ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/servers"): "test_other_project_never_lists_the_server",
    ("GET", "/servers/detail"): "test_other_project_never_lists_the_server",
    ("POST", "/servers"): "test_nova_matrix_requests_pass_for_the_owner (reader: 403)",
    ("GET", "/flavors"): "test_flavor_writes_are_admin_only (reads are open)",
    ("GET", "/flavors/detail"): "test_flavor_writes_are_admin_only (reads are open)",
    ("GET", "/flavors/<ident>"): "test_flavor_writes_are_admin_only (reads are open)",
    ("GET", "/flavors/<ident>/os-extra_specs"): "test_flavor_writes_are_admin_only",
    ("GET", "/flavors/<ident>/os-extra_specs/<key>"): "test_flavor_writes_are_admin_only",
    ("GET", "/os-availability-zone"): "test_other_project_never_lists_the_server",
    ("GET", "/os-availability-zone/detail"): "test_other_project_never_lists_the_server",
    ("GET", "/limits"): "test_other_project_never_lists_the_server",
}
NOVA_PUBLIC_ROUTES = {("GET", "/"), ("GET", "/v2.1")}
TM_FLAVOR = "tm-private"


def nova_routes() -> set[tuple[str, str]]:
    """(method, path) of every compute route, without ``/v2.1``, the legacy
    ``/<project_id>`` prefix and the trailing slash; POST .../action is one row
    per action (servers: the handler's table; flavors: the two access actions)."""
    out = set()
    for rule in NOVA_APP.url_map.iter_rules():
        path = rule.rule
        for prefix in ("/v2.1/<project_id>", "/v2.1"):
            if path.startswith(prefix + "/"):
                path = path[len(prefix):]
                break
        path = path.rstrip("/") or "/"
        for method in set(rule.methods) - {"HEAD", "OPTIONS"}:
            if path == "/servers/<ident>/action":
                out |= {(method, f"{path} {a}") for a in NOVA_SERVER_ACTIONS}
            elif path == "/flavors/<ident>/action":
                out |= {(method, f"{path} {a}") for a in ("addTenantAccess",
                                                          "removeTenantAccess")}
            else:
                out.add((method, path))
    return out


def test_every_nova_route_is_in_the_matrix():
    """Each compute route (each server action too) is a server row, an admin-only
    flavor row, another route covered here, or public — a new route or action
    fails this test until it is listed."""
    routes = nova_routes()
    assert {r for r in routes if r[1].startswith("/servers/<ident>")} == set(NOVA_SERVER_ROWS)
    flavor_writes = {r for r in routes if r[1].startswith("/flavors") and r[0] != "GET"}
    assert flavor_writes | {("GET", "/flavors/<ident>/os-flavor-access")} == set(
        NOVA_FLAVOR_ADMIN_ROWS)
    assert routes - set(NOVA_SERVER_ROWS) - set(NOVA_FLAVOR_ADMIN_ROWS) == set(
        NOVA_OTHER_ROUTES) | NOVA_PUBLIC_ROUTES
    declared = {rule.name for rule in policy.list_rules()}
    assert {row.rule for row in {**NOVA_SERVER_ROWS, **NOVA_FLAVOR_ADMIN_ROWS}.values()} \
        <= declared


def nova_path(route: str, ident: str, key: str = "tm-key") -> str:
    return route.split(" ")[0].replace("<ident>", ident).replace("<key>", key)


def nova_denial_problem(answer: Answer, ident: str) -> str | None:
    """None when ``answer`` is Nova's itemNotFound naming the server, or its
    forbidden naming a policy rule; else what is wrong with it."""
    name, message = nova_fault(answer)
    if answer.status == 404 and name == "itemNotFound" and ident in message:
        return None
    if answer.status == 403 and name == "forbidden" and "Policy doesn't allow" in message:
        return None
    return f"{answer.status} {answer.body!r}"[:300]


def nova_server_view(node, callers, uuid: str) -> dict:
    shown = nova_call(node, callers["a-admin"], "GET", f"/servers/{uuid}")
    assert shown.status == 200, shown
    s = shown.body["server"]
    return {k: s.get(k) for k in ("id", "name", "status", "metadata", "tenant_id",
                                  "OS-EXT-STS:task_state", "OS-EXT-STS:vm_state")}


def test_other_project_is_denied_every_server_route_on_every_node(
        nodes, callers, victim, a_registry, b_own):
    """b-member, through each node's compute API, plain / with forged admin headers
    of project A / with all_tenants: every server route and action on project A's
    server is itemNotFound or forbidden, and the server is untouched (status, name,
    metadata, actions and the Zun record)."""
    intruder = callers["b-member"]
    before = snapshot(nodes[0], callers, victim, a_registry)
    before_nova = nova_server_view(nodes[0], callers, victim["uuid"])
    variants = {"plain": ({}, ""), "forged": (forged_headers(callers), ""),
                "all_tenants": ({}, "?all_tenants=1")}
    cells = [(f"node{i} {variant} {method} {route}", node, method,
              nova_path(route, victim["uuid"]) + suffix, headers, row)
             for i, node in enumerate(nodes, 1)
             for variant, (headers, suffix) in variants.items()
             for (method, route), row in NOVA_SERVER_ROWS.items()]

    def attempt(cell):
        _, node, method, path, headers, row = cell
        answer = nova_call(node, intruder, method, path, body=row.body, headers=headers)
        return nova_denial_problem(answer, victim["uuid"])

    problems = run_parallel([(c[1].name, lambda c=c: attempt(c)) for c in cells])
    leaks = [f"{c[0]}: {p}" for c, p in zip(cells, problems) if p]
    assert not leaks, f"{len(leaks)} of {len(cells)} attempts not denied:\n" + "\n".join(leaks)
    for node in nodes:
        assert nova_server_view(node, callers, victim["uuid"]) == before_nova
    assert_untouched(nodes, callers, victim, a_registry, before)


def test_nova_matrix_requests_pass_for_the_owner(nodes, callers):
    """Control: the same compute requests by project A's member on its own server
    through another node are never itemNotFound/forbidden (a 409 for an action in
    the wrong state is the route's own answer); a-reader's create is 403."""
    member = callers["a-member"]
    own = create_running(nodes[1], member, "tm-nova-control")
    rows = sorted(NOVA_SERVER_ROWS.items(), key=lambda item: item[0][0] == "DELETE")
    wrong = []
    for (method, route), row in rows:
        answer = nova_call(nodes[2], member, method, nova_path(route, own["uuid"]),
                           body=row.body)
        if answer.status in (403, 404):
            wrong.append(f"{method} {route}: {answer.status} {answer.body!r}"[:300])
    assert not wrong, "\n".join(wrong)
    reader = nova_call(nodes[0], callers["a-reader"], "POST", "/servers", body={"server": {
        "name": "tm-reader", "flavorRef": "c1.tiny", "imageRef": TEST_IMAGE}})
    assert reader.status == 403 and "container:create" in nova_fault(reader)[1], reader


def test_other_project_never_lists_the_server(nodes, callers, victim, b_own):
    """b-member's server lists through each node hold project B's own only (forged
    headers change nothing); all_tenants is 403; zones and limits answer."""
    intruder = callers["b-member"]
    for node in nodes:
        for headers in ({}, forged_headers(callers)):
            for path in ("/servers", "/servers/detail"):
                listed = nova_call(node, intruder, "GET", path, headers=headers)
                assert listed.status == 200, listed
                assert [s["id"] for s in listed.body["servers"]] == [b_own["uuid"]]
                everyone = nova_call(node, intruder, "GET", path + "?all_tenants=1",
                                     headers=headers)
                assert everyone.status == 403, everyone
        assert nova_call(node, intruder, "GET", "/os-availability-zone").status == 200
        assert nova_call(node, intruder, "GET", "/os-availability-zone/detail").status == 403
        assert nova_call(node, intruder, "GET", "/limits").status == 200


def test_flavor_writes_are_admin_only(nodes, callers):
    """a-admin makes a private flavor through node 1; members and readers of
    either project (forged headers included) get 403 naming Nova's rule for every
    flavor write through each node, and the flavor is unchanged; reads are open
    (the private flavor is 404 for them)."""
    admin = callers["a-admin"]
    made = nova_call(nodes[0], admin, "POST", "/flavors", body={"flavor": {
        "name": TM_FLAVOR, "id": TM_FLAVOR, "ram": 64, "vcpus": 1, "disk": 0,
        "os-flavor-access:is_public": False}})
    assert made.status == 200, made
    specs = nova_call(nodes[1], admin, "POST", f"/flavors/{TM_FLAVOR}/os-extra_specs",
                      body={"extra_specs": {"tm-key": "kept"}})
    assert specs.status == 200, specs
    before = nova_call(nodes[0], admin, "GET", f"/flavors/{TM_FLAVOR}").body
    for node in nodes:
        for user, headers in (("a-member", {}), ("a-reader", {}), ("b-member", {}),
                              ("b-member", forged_headers(callers))):
            for (method, route), row in NOVA_FLAVOR_ADMIN_ROWS.items():
                denied = nova_call(node, callers[user], method, nova_path(route, TM_FLAVOR),
                                   body=row.body, headers=headers)
                assert denied.status == 403 and row.rule in nova_fault(denied)[1], (
                    user, route, denied)
            assert nova_call(node, callers[user], "GET", "/flavors/c1.small").status == 200
            assert nova_call(node, callers[user], "GET", "/flavors/detail").status == 200
            hidden = nova_call(node, callers[user], "GET", f"/flavors/{TM_FLAVOR}",
                               headers=headers)
            assert hidden.status == 404, (user, hidden)
            for path in (f"/flavors/{TM_FLAVOR}/os-extra_specs",
                         f"/flavors/{TM_FLAVOR}/os-extra_specs/tm-key"):
                assert nova_call(node, callers[user], "GET", path).status == 404
    assert nova_call(nodes[0], admin, "GET", f"/flavors/{TM_FLAVOR}").body == before
    assert nova_call(nodes[2], admin, "DELETE", f"/flavors/{TM_FLAVOR}").status == 202
