"""A synchronous test client for ZunAPI over treq's StubTreq (no sockets, no reactor).

``pump``: called while an answer is pending (e.g. advancing the stack's
task.Clock), up to a bound; without it answers must be synchronous."""

from __future__ import annotations

import json as _json
from typing import Any

import attrs
from treq.testing import StubTreq
from twisted.python.failure import Failure

BASE = "http://127.0.0.1:9517"
USER_TOKEN = "alice:projA"  # noauth: user alice of project projA, not admin


@attrs.frozen
class Response:
    status: int
    headers: dict  # lower-case name -> last value (str)
    body: bytes

    @property
    def json(self) -> Any:
        return _json.loads(self.body)

    @property
    def error(self) -> dict:
        """The single Zun error object of a 4xx/5xx."""
        body = self.json
        assert list(body) == ["errors"] and len(body["errors"]) == 1, body
        return body["errors"][0]


def _result(d, pump=None, max_steps: int = 5000):
    out = []
    d.addBoth(out.append)
    for _ in range(max_steps if pump is not None else 0):
        if out:
            break
        pump()
    assert out, "request did not complete"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


class Client:
    def __init__(self, resource, pump=None):
        self.stub = StubTreq(resource)
        self._pump = pump

    def _step(self):
        self._pump()
        self.stub.flush()

    def request(self, method: str, path: str, *, json: Any = None, data: bytes | None = None,
                version: str | None = "1.40", token: str | None = "notused",
                headers: dict | None = None, content_type: str | None = "application/json"
                ) -> Response:
        hdrs: dict[str, list[str]] = {}
        if version is not None:
            hdrs["OpenStack-API-Version"] = [f"container {version}"]
        if token is not None:
            hdrs["X-Auth-Token"] = [token]
        if content_type is not None:
            hdrs["Content-Type"] = [content_type]
        for k, v in (headers or {}).items():
            hdrs[k] = [v]
        if json is not None:
            data = _json.dumps(json).encode()
        d = self.stub.request(method, BASE + path, headers=hdrs, data=data)
        self.stub.flush()
        pump = self._step if self._pump is not None else None
        resp = _result(d, pump)
        body_d = resp.content()
        self.stub.flush()
        body = _result(body_d, pump)
        headers_out = {k.decode().lower(): v[-1].decode()
                       for k, v in resp.headers.getAllRawHeaders()}
        return Response(resp.code, headers_out, body)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def delete(self, path, **kw):
        kw.setdefault("content_type", "application/octet-stream")
        return self.request("DELETE", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)
