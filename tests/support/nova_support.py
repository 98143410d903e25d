"""Shared helpers of the compute API tests: a NovaAPI over the same node-local
stack (``tests.sim.api.conftest.Stack``) as the Zun API tests, and a client that sends
the compute microversion header."""

from __future__ import annotations

from tests.support.client import Client
from zund.api.nova.app import NovaAPI
from zund.api.nova.flavors import load_flavors

FLAVORS = load_flavors(["c1.tiny:1:128:1", "c1.small:1:512:1", "c1.medium:2:2048:5",
                        "m1.vm:1:256:1:zund:runtime=microvm"])


#: a local image whose default command keeps running (busybox's ``sh`` exits at once
#: without a terminal), so a server booted from it stays ACTIVE
SERVER_IMAGE = "zund-test/server:latest"
SERVER_CMD = ["sh", "-c", 'trap "exit 0" TERM; while true; do sleep 1; done']


def add_server_image(runtime) -> str:
    """Make SERVER_IMAGE local on the fake ``runtime`` (a test hook of the fake)."""
    runtime.add_local_image(SERVER_IMAGE)
    runtime.images[SERVER_IMAGE].cmd = list(SERVER_CMD)
    return SERVER_IMAGE


class NovaClient:
    """Requests with ``OpenStack-API-Version: compute <mv>`` (None: no header)."""

    def __init__(self, stack, api: NovaAPI | None = None, mv: str | None = "2.100"):
        self.stack = stack
        self.api = api or nova_api(stack)
        self.http = Client(self.api.resource(), pump=stack.pump)
        self.mv = mv
        add_server_image(stack.runtime)

    def request(self, method: str, path: str, *, json=None, token: str | None = "notused",
                mv: str | None = "default", headers: dict | None = None, **kw):
        mv = self.mv if mv == "default" else mv
        hdrs = dict(headers or {})
        if mv is not None:
            hdrs["OpenStack-API-Version"] = f"compute {mv}"
        return self.http.request(method, path, json=json, token=token, version=None,
                                 headers=hdrs, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        kw.setdefault("content_type", None)
        return self.request("DELETE", path, **kw)

    def create(self, name="web1", flavor="c1.small", image=SERVER_IMAGE, **server):
        body = {"server": dict({"name": name, "flavorRef": flavor, "imageRef": image},
                               **server)}
        return self.post("/v2.1/servers", json=body)


def nova_api(stack, **kw) -> NovaAPI:
    kw.setdefault("flavors", FLAVORS)
    return NovaAPI(stack.containers, stack.config, stack.enforcer, clock=stack.clock, **kw)
