"""zund.common.http.HardenedSite on an in-memory transport and a task.Clock: body
limits before buffering, the header deadline, the connection cap. (The same over
real sockets against a real node: tests/real/e2e/test_hostile_clients.py.)"""

from __future__ import annotations

import json

import pytest
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.web.resource import Resource

from zund.api.app import ApiConfig
from zund.common.http import FixedBodyLimit, HardenedSite, ListenerLimits

LIMITS = ListenerLimits(header_timeout_s=5.0, idle_timeout_s=60.0, max_connections=2)


class Echo(Resource):
    """Answers with the size of the body it got; counts what reached it."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.reached = 0

    def render(self, request):
        self.reached += 1
        return str(len(request.content.read())).encode()


def connect(site):
    proto = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    if proto is None:
        return None, None
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    proto.makeConnection(transport)
    return proto, transport


@pytest.fixture
def clock():
    return task.Clock()


@pytest.fixture
def echo():
    return Echo()


@pytest.fixture
def site(echo, clock):
    return HardenedSite(echo, FixedBodyLimit(100), LIMITS, clock, name="test")


def test_a_body_within_the_limit_reaches_the_resource(site, echo):
    """100 bytes with a limit of 100: served."""
    proto, transport = connect(site)
    proto.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"a" * 100)
    assert transport.value().startswith(b"HTTP/1.1 200")
    assert transport.value().endswith(b"100")
    assert echo.reached == 1


def test_a_declared_oversized_body_is_refused_before_any_byte_is_read(site, echo):
    """Content-Length past the limit: 413 and close right after the headers."""
    proto, transport = connect(site)
    proto.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                       b"Content-Length: 1073741824\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in transport.value()
    assert transport.disconnecting
    assert echo.reached == 0 and site.stats["too_large"] == 1


def test_a_streamed_body_is_refused_once_it_passes_the_limit(site, echo):
    """Chunked (no length): counted while it streams, refused at the first byte over,
    even when the final chunk comes in the same read."""
    proto, transport = connect(site)
    chunk = b"32\r\n" + b"a" * 50 + b"\r\n"
    proto.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       + chunk * 3 + b"0\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert transport.disconnecting and echo.reached == 0


def test_headers_must_be_complete_within_the_header_timeout(site, clock):
    """A byte now and then does not extend the header deadline: 408 and close."""
    proto, transport = connect(site)
    proto.dataReceived(b"GET / HTTP/1.1\r\n")
    for _ in range(4):
        clock.advance(1.0)
        proto.dataReceived(b"X-Slow: 1\r\n")
    assert not transport.disconnecting
    clock.advance(1.1)
    assert transport.value().startswith(b"HTTP/1.1 408 ")
    assert transport.disconnecting and site.stats["header_timeouts"] == 1


def test_on_a_kept_alive_connection_the_next_requests_first_byte_starts_its_deadline(
        site, clock, echo):
    """Idle between requests is the idle timeout's business; once the next request
    starts, its headers again have header_timeout_s."""
    proto, transport = connect(site)
    clock.advance(4.0)
    proto.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert echo.reached == 1
    clock.advance(30.0)  # a pooled connection waiting for its next call
    assert not transport.disconnecting
    proto.dataReceived(b"GET / HTTP/1.1\r\n")
    clock.advance(4.9)
    assert not transport.disconnecting
    clock.advance(0.2)
    assert transport.disconnecting and site.stats["header_timeouts"] == 1


def test_a_silent_connection_is_closed_after_the_idle_timeout(site, clock, echo):
    """Between requests nothing arrives for idle_timeout_s: closed."""
    proto, transport = connect(site)
    proto.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    clock.advance(LIMITS.idle_timeout_s - 1)
    assert not transport.disconnecting
    clock.advance(1.1)
    assert transport.disconnecting


def test_the_connection_cap_refuses_the_excess_until_one_closes(site):
    """max_connections open at once; the next is refused; a close frees a place."""
    first, _ = connect(site)
    second, _ = connect(site)
    third, _ = connect(site)
    assert first is not None and second is not None and third is None
    assert site.stats["refused_connections"] == 1
    first.connectionLost(None)
    fourth, _ = connect(site)
    assert fourth is not None and site.open_connections == 2


def test_the_api_gives_put_archive_the_archive_limit_and_refuses_in_zuns_format(stack):
    """Per-route limits come from the API's routes; the 413 is Zun's errors body."""
    api = stack.api(config=ApiConfig(max_request_body_bytes=2000, max_archive_body_bytes=50_000))
    assert api.limit_for(b"POST", b"/v1/containers/web/put_archive") == 50_000
    assert api.limit_for(b"POST", b"/containers/web/put_archive/?x=1") == 50_000
    assert api.limit_for(b"POST", b"http://h:1/v1/containers/web/put_archive") == 50_000
    assert api.limit_for(b"POST", b"/v1/containers") == 2000
    assert api.limit_for(b"GET", b"/v1/containers/web/put_archive") == 2000
    assert api.limit_for(b"POST", b"/%ff%fe/\xff") == 2000
    refusal = api.refusal(2000)
    error = json.loads(refusal.body)["errors"][0]
    assert refusal.status == 413 and error["status"] == 413
    assert error["code"] == "container.request-entity-too-large"


def test_a_url_that_is_not_utf8_is_a_400_in_zuns_format(client):
    """%ED%A0%80 (an encoded surrogate) in the path: 400, not Klein's plain text."""
    r = client.get("/v1/containers/%ED%A0%80")
    assert r.status == 400
    assert r.error["code"] == "container.invalid-input"
