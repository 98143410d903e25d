"""A real ``zund serve`` (fake runtime) on 127.0.0.1 against hostile clients on raw
sockets: oversized bodies on the API and peer ports are refused before they are
buffered, connections that never finish their headers are closed within the
configured timeout, and a listener's connection cap refuses the excess.

Issue 10 item 8. Waits are socket reads with deadlines, never sleeps."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time

import msgpack
import pytest

from tests.support.nodeproc import ZundProcess, free_port

HOST = "127.0.0.1"
HEADER_TIMEOUT_S = 2.0
MAX_CONNECTIONS = 20
API_BODY_LIMIT = 64 * 1024
PEER_BODY_LIMIT = 64 * 1024
GIB = 1024 ** 3
#: a client may push at most this much before the server stops reading: the body
#: limit plus the kernel's socket buffers on loopback
SENT_BOUND = 48 * 1024 * 1024


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("hostile"))
    peer_port = free_port(HOST)
    proc = ZundProcess(workdir, name="hostile1", runtimes="fake", extra={
        "api": {"header_timeout_s": str(HEADER_TIMEOUT_S), "idle_timeout_s": "30",
                "max_connections": str(MAX_CONNECTIONS),
                "max_request_body_bytes": str(API_BODY_LIMIT),
                "max_archive_body_bytes": str(2 * API_BODY_LIMIT)},
        "peer": {"port": str(peer_port), "header_timeout_s": str(HEADER_TIMEOUT_S),
                 "max_connections": str(MAX_CONNECTIONS),
                 "max_body_bytes": str(PEER_BODY_LIMIT)},
    })
    proc.peer_port = peer_port
    proc.start()
    yield proc
    proc.terminate()
    shutil.rmtree(workdir, ignore_errors=True)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def spooled_bytes(pid: int) -> int:
    """Bytes in deleted (temporary) files the process holds open."""
    total = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").endswith("(deleted)"):
                total += os.stat(f"/proc/{pid}/fd/{fd}").st_size
        except OSError:
            continue
    return total


def connect(port: int, timeout_s: float = 10.0) -> socket.socket:
    s = socket.create_connection((HOST, port), timeout=timeout_s)
    return s


def read_until_closed(s: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    out = b""
    while time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return out
        except socket.timeout:
            break
        if not chunk:
            return out
        out += chunk
    raise AssertionError(f"server kept the connection open; got {out[:200]!r}")


def stream(s: socket.socket, total: int, chunked: bool, pid: int) -> tuple[int, int]:
    """Send up to ``total`` body bytes until the server stops us; -> (bytes sent,
    largest temporary-file size seen in the server while sending)."""
    block = b"x" * 65536
    piece = (b"%x\r\n" % len(block)) + block + b"\r\n" if chunked else block
    sent = spooled = 0
    s.settimeout(10)
    try:
        while sent < total:
            s.sendall(piece)
            sent += len(block)
            if sent % (4 * 1024 * 1024) == 0:
                spooled = max(spooled, spooled_bytes(pid))
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass
    return sent, spooled


def status_of(response: bytes) -> int | None:
    if not response.startswith(b"HTTP/1.1 "):
        return None
    return int(response.split(b" ", 2)[1])


def body_of(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


def api_head(path: str, extra: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nX-Auth-Token: admin:demo\r\n"
            f"OpenStack-API-Version: container 1.40\r\nContent-Type: application/json\r\n"
            f"{extra}\r\n").encode()


def test_api_refuses_a_declared_gigabyte_body_before_reading_it(node):
    """Content-Length: 1 GiB on the API port: 413 in Zun's errors format at once;
    the body is never read."""
    before = rss_kib(node.proc.pid)
    with connect(node.port) as s:
        s.sendall(api_head("/v1/containers", f"Content-Length: {GIB}\r\n"))
        response = read_until_closed(s, time.monotonic() + 10)
    assert status_of(response) == 413, response[:300]
    error = json.loads(body_of(response))["errors"][0]
    assert error["status"] == 413 and str(API_BODY_LIMIT) in error["detail"]
    assert rss_kib(node.proc.pid) - before < 32 * 1024


def test_api_stops_reading_a_streamed_body_past_the_limit(node):
    """A chunked body (no length) is counted while it streams: the server closes the
    connection after the limit, holding neither the body in memory nor on disk."""
    before = rss_kib(node.proc.pid)
    with connect(node.port) as s:
        s.sendall(api_head("/v1/containers", "Transfer-Encoding: chunked\r\n"))
        sent, spooled = stream(s, GIB, chunked=True, pid=node.proc.pid)
        try:
            response = read_until_closed(s, time.monotonic() + 10)
        except (ConnectionResetError, OSError):
            response = b""
    assert sent < SENT_BOUND, f"server kept reading: {sent} bytes accepted"
    assert status_of(response) in (413, None), response[:300]
    assert spooled < 4 * API_BODY_LIMIT
    assert rss_kib(node.proc.pid) - before < 32 * 1024
    # the node still serves
    assert node.api("GET", "/containers").status_code == 200


def test_put_archive_gets_the_larger_limit_and_others_do_not(node):
    """Per-route limits: a body between the ordinary and the archive limit is refused
    on create but reaches put_archive (which answers 404 for an unknown container)."""
    body = json.dumps({"path": "/", "data": "a" * (API_BODY_LIMIT + 1024)})
    create = node.api("POST", "/containers", data=body)
    archive = node.api("POST", "/containers/nosuch/put_archive", data=body)
    assert create.status_code == 413
    assert archive.status_code == 404


def test_peer_port_refuses_oversized_bodies_before_the_signature(node):
    """Unsigned Content-Length: 1 GiB on the peer port: 413 with a peer protocol error,
    and a streamed one is cut off, before any signature check could run."""
    head = (f"POST /v1/peer HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/msgpack\r\n"
            f"Content-Length: {GIB}\r\n\r\n").encode()
    with connect(node.peer_port) as s:
        s.sendall(head)
        response = read_until_closed(s, time.monotonic() + 10)
    assert status_of(response) == 413, response[:300]
    error = msgpack.unpackb(body_of(response), raw=False, strict_map_key=False)["error"]
    assert error["type"] == "RequestEntityTooLarge"

    head = (f"POST /v1/peer HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/msgpack\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n").encode()
    with connect(node.peer_port) as s:
        s.sendall(head)
        sent, spooled = stream(s, GIB, chunked=True, pid=node.proc.pid)
    assert sent < SENT_BOUND, f"peer server kept reading: {sent} bytes accepted"
    assert spooled < 4 * PEER_BODY_LIMIT


@pytest.mark.parametrize("listener", ["api", "peer"])
def test_connections_without_headers_are_closed_and_the_cap_refuses_the_excess(node, listener):
    """50 connections that never finish their headers: those past the cap are closed
    at once without an answer, the rest get 408 within the header timeout; the
    listener serves again afterwards."""
    port = node.port if listener == "api" else node.peer_port
    started = time.monotonic()
    socks = []
    try:
        for _ in range(50):
            s = connect(port)
            s.sendall(b"GET /v1/containers HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(s)
        deadline = started + HEADER_TIMEOUT_S + 10
        answers = [read_until_closed(s, deadline) for s in socks]
    finally:
        for s in socks:
            s.close()
    timed_out = [a for a in answers if status_of(a) == 408]
    refused = [a for a in answers if a == b""]
    assert len(timed_out) + len(refused) == 50, answers
    assert 1 <= len(timed_out) <= MAX_CONNECTIONS
    assert len(refused) >= 50 - MAX_CONNECTIONS
    if listener == "api":
        assert node.api("GET", "/containers").status_code == 200


def test_a_client_dribbling_header_bytes_is_still_cut_off(node):
    """Sending a header byte now and then resets no deadline: the headers must be
    complete within the header timeout."""
    with connect(node.port) as s:
        s.sendall(b"GET /v1/containers HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < HEADER_TIMEOUT_S + 10:
            s.settimeout(0.3)  # the dribble's pace, and the wait for the close
            try:
                s.recv(4096)  # the 408, or b"" at the close: either way the server ended it
                closed = True
                break
            except socket.timeout:
                try:
                    s.sendall(b"X")
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
            except ConnectionResetError:
                closed = True
                break
        elapsed = time.monotonic() - started
    assert closed
    assert elapsed < HEADER_TIMEOUT_S + 5
