"""tests.support.nodeproc.free_port: the ports test nodes listen on are never ones
the kernel may give an outgoing connection in the meantime (CI once failed a whole
module with "Address already in use" on a port picked by ``bind(0)``)."""

import socket

from tests.support import nodeproc


def _ephemeral() -> range:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low, high = (int(x) for x in f.read().split())
    return range(low, high + 1)


def test_ports_are_outside_the_kernels_ephemeral_range_and_never_repeat():
    ports = [nodeproc.free_port("127.0.0.1") for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert not [p for p in ports if p in _ephemeral()]


def test_a_port_taken_for_tcp_or_udp_is_skipped():
    nxt = nodeproc._next_port[0]
    after = nodeproc._port_after(nxt)
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", nxt))
        udp.bind(("127.0.0.1", after))
        port = nodeproc.free_port("127.0.0.1")
    assert port not in (nxt, after)
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", port))  # free for both, as promised
