"""Wire format: messages, the versioned envelope, compound packing.

Envelope (every UDP datagram and every push-pull TCP frame)::

    byte 0   PROTOCOL_VERSION
    byte 1   flags (bit 0: AES-GCM encrypted)
    rest     body, or nonce(12) || AES-GCM(body, aad=bytes 0..1) when encrypted
    body     msgpack [cluster_name: str, [message, ...]]
    message  msgpack [MessageType, field, ...]   (positional fields, see below)

The cluster name travels in every packet so two clusters sharing a network (or
even a key) never merge.  Several messages share one datagram ("compound",
memberlist net.go makeCompoundMessage); a packet never exceeds
``max_datagram`` bytes.  Decoding never raises: a bad packet yields a
``Decoded`` with ``error`` set to the stats counter to bump.
"""

from __future__ import annotations

import enum
import struct

import attrs
import msgpack

from zund.gossip.keyring import ENCRYPT_OVERHEAD, Keyring
from zund.gossip.member import MemberState

PROTOCOL_VERSION = 1
FLAG_ENCRYPTED = 0x01
HEADER_SIZE = 2
MAX_MESSAGES_PER_PACKET = 255  # memberlist compound messages use a uint8 count
MAX_NAME_BYTES = 256
MAX_HOST_BYTES = 255
MAX_INT = 2**63 - 1


class MessageType(enum.IntEnum):
    """Append-only: never renumber, never reuse (memberlist net.go messageType)."""

    PING = 0
    INDIRECT_PING = 1
    ACK = 2
    NACK = 3
    SUSPECT = 4
    ALIVE = 5
    DEAD = 6
    PUSH_PULL = 7


@attrs.frozen
class Ping:
    """SWIM §3.1 direct probe.  ``target`` guards against a different node now
    answering at the probed address (memberlist ping.Node)."""

    seq: int
    target: str
    source_name: str
    source_addr: tuple


@attrs.frozen
class IndirectPing:
    """SWIM §3.1 ping-req: ask a peer to probe ``target`` for us."""

    seq: int
    target: str
    target_addr: tuple
    nack: bool
    source_name: str
    source_addr: tuple


@attrs.frozen
class Ack:
    seq: int


@attrs.frozen
class Nack:
    """Lifeguard §IV-A: the relay is alive but got no ack from the target."""

    seq: int


@attrs.frozen
class Suspect:
    incarnation: int
    node: str
    sender: str


@attrs.frozen
class Alive:
    incarnation: int
    node: str
    addr: tuple
    meta: bytes
    meta_version: int


@attrs.frozen
class Dead:
    """``sender == node`` means the node left gracefully (memberlist Leave)."""

    incarnation: int
    node: str
    sender: str


@attrs.frozen
class PushPullState:
    name: str
    addr: tuple
    incarnation: int
    state: MemberState
    meta: bytes
    meta_version: int


@attrs.frozen
class PushPull:
    """Full state exchange over TCP (memberlist net.go pushPullMsg)."""

    join: bool
    states: tuple


# ---------------------------------------------------------------- encoding

def _addr(addr) -> list:
    return [addr[0], addr[1]]


def _fields(msg) -> list:
    if isinstance(msg, Ping):
        return [MessageType.PING, msg.seq, msg.target, msg.source_name, _addr(msg.source_addr)]
    if isinstance(msg, IndirectPing):
        return [MessageType.INDIRECT_PING, msg.seq, msg.target, _addr(msg.target_addr), msg.nack,
                msg.source_name, _addr(msg.source_addr)]
    if isinstance(msg, Ack):
        return [MessageType.ACK, msg.seq]
    if isinstance(msg, Nack):
        return [MessageType.NACK, msg.seq]
    if isinstance(msg, Suspect):
        return [MessageType.SUSPECT, msg.incarnation, msg.node, msg.sender]
    if isinstance(msg, Alive):
        return [MessageType.ALIVE, msg.incarnation, msg.node, _addr(msg.addr), msg.meta, msg.meta_version]
    if isinstance(msg, Dead):
        return [MessageType.DEAD, msg.incarnation, msg.node, msg.sender]
    if isinstance(msg, PushPull):
        return [MessageType.PUSH_PULL, msg.join,
                [[s.name, _addr(s.addr), s.incarnation, int(s.state), s.meta, s.meta_version]
                 for s in msg.states]]
    raise TypeError(f"not a gossip message: {msg!r}")


def encode_message(msg) -> bytes:
    return msgpack.packb(_fields(msg), use_bin_type=True)


def message_size(msg) -> int:
    return len(encode_message(msg))


def packet_overhead(cluster_name: str) -> int:
    """Worst-case envelope bytes around the messages (encryption included)."""
    return HEADER_SIZE + ENCRYPT_OVERHEAD + 1 + len(msgpack.packb(cluster_name)) + 3


def _body(cluster_name: str, encoded_messages) -> bytes:
    # [cluster, [m1, m2, ...]] assembled by hand so each message is encoded once;
    # array16 is always used for the list, which keeps packet_overhead exact.
    return b"".join((
        b"\x92",
        msgpack.packb(cluster_name, use_bin_type=True),
        b"\xdc" + struct.pack(">H", len(encoded_messages)),
        *encoded_messages,
    ))


def encode_packet(cluster_name: str, messages, keyring: Keyring | None) -> bytes:
    """Envelope ``messages`` (message objects); encrypts with the primary key."""
    encoded = [encode_message(m) for m in messages]
    if len(encoded) > MAX_MESSAGES_PER_PACKET:
        raise ValueError("too many messages for one packet")
    body = _body(cluster_name, encoded)
    if keyring is not None and keyring.enabled:
        header = bytes((PROTOCOL_VERSION, FLAG_ENCRYPTED))
        return header + keyring.encrypt(body, header)
    return bytes((PROTOCOL_VERSION, 0)) + body


# ---------------------------------------------------------------- decoding

class _Invalid(Exception):
    pass


def _int(value, lo=0, hi=MAX_INT) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise _Invalid
    return value


def _str(value, max_bytes=MAX_NAME_BYTES) -> str:
    if type(value) is not str or len(value) > max_bytes or not value:
        raise _Invalid
    return value


def _bool(value) -> bool:
    if type(value) is not bool:
        raise _Invalid
    return value


def _bytes(value, max_len) -> bytes:
    if type(value) is not bytes or len(value) > max_len:
        raise _Invalid
    return value


def _address(value) -> tuple:
    if type(value) is not list or len(value) != 2:
        raise _Invalid
    return (_str(value[0], MAX_HOST_BYTES), _int(value[1], 0, 65535))


def _arity(raw, n) -> None:
    if len(raw) != n:
        raise _Invalid


def _parse(raw, limits: "Limits"):
    if type(raw) is not list or not raw:
        raise _Invalid
    kind = _int(raw[0], 0, 255)
    try:
        kind = MessageType(kind)
    except ValueError:
        return None  # a newer peer's message type: skip, don't fail the packet
    if kind is MessageType.PING:
        _arity(raw, 5)
        return Ping(_int(raw[1]), _str(raw[2]), _str(raw[3]), _address(raw[4]))
    if kind is MessageType.INDIRECT_PING:
        _arity(raw, 7)
        return IndirectPing(_int(raw[1]), _str(raw[2]), _address(raw[3]), _bool(raw[4]),
                            _str(raw[5]), _address(raw[6]))
    if kind is MessageType.ACK:
        _arity(raw, 2)
        return Ack(_int(raw[1]))
    if kind is MessageType.NACK:
        _arity(raw, 2)
        return Nack(_int(raw[1]))
    if kind is MessageType.SUSPECT:
        _arity(raw, 4)
        return Suspect(_int(raw[1]), _str(raw[2]), _str(raw[3]))
    if kind is MessageType.ALIVE:
        _arity(raw, 6)
        return Alive(_int(raw[1]), _str(raw[2]), _address(raw[3]), _bytes(raw[4], limits.max_meta_bytes),
                     _int(raw[5]))
    if kind is MessageType.DEAD:
        _arity(raw, 4)
        return Dead(_int(raw[1]), _str(raw[2]), _str(raw[3]))
    if kind is MessageType.PUSH_PULL:
        _arity(raw, 3)
        states_raw = raw[2]
        if type(states_raw) is not list or len(states_raw) > limits.max_members:
            raise _Invalid
        states = []
        for s in states_raw:
            if type(s) is not list or len(s) != 6:
                raise _Invalid
            state = _int(s[3], 0, 255)
            try:
                state = MemberState(state)
            except ValueError:
                raise _Invalid from None
            states.append(PushPullState(_str(s[0]), _address(s[1]), _int(s[2]), state,
                                        _bytes(s[4], limits.max_meta_bytes), _int(s[5])))
        return PushPull(_bool(raw[1]), tuple(states))
    raise _Invalid  # pragma: no cover - every enum member is handled above


@attrs.frozen
class Limits:
    max_size: int = 1400
    max_meta_bytes: int = 1024
    max_members: int = 10_000


@attrs.frozen
class Decoded:
    """Result of ``decode_packet``: ``error`` names the stats counter on drop."""

    messages: tuple = ()
    error: str | None = None
    bad_messages: int = 0
    unknown_messages: int = 0


def decode_packet(data: bytes, cluster_name: str, keyring: Keyring | None, limits: Limits) -> Decoded:
    """Open and parse one envelope.  Never raises on hostile input."""
    if len(data) > limits.max_size:
        return Decoded(error="dropped_oversize")
    if len(data) < HEADER_SIZE + 2:
        return Decoded(error="dropped_decode")
    if data[0] != PROTOCOL_VERSION:
        return Decoded(error="dropped_version")
    flags = data[1]
    if flags & ~FLAG_ENCRYPTED:
        return Decoded(error="dropped_decode")
    header = data[:HEADER_SIZE]
    encrypted = bool(flags & FLAG_ENCRYPTED)
    enabled = keyring is not None and keyring.enabled
    if encrypted != enabled:
        # Encrypted cluster: refuse plaintext (memberlist GossipVerifyIncoming);
        # plaintext cluster: we cannot read encrypted packets.
        return Decoded(error="dropped_decrypt")
    if encrypted:
        body = keyring.decrypt(data[HEADER_SIZE:], header)
        if body is None:
            return Decoded(error="dropped_decrypt")
    else:
        body = data[HEADER_SIZE:]
    try:
        outer = msgpack.unpackb(
            body, raw=False, strict_map_key=True, use_list=True,
            max_str_len=max(limits.max_meta_bytes, MAX_NAME_BYTES) + 16,
            max_bin_len=limits.max_meta_bytes,
            max_array_len=max(limits.max_members, MAX_MESSAGES_PER_PACKET),
            max_map_len=0, max_ext_len=0,
        )
    except Exception:  # msgpack raises many types on garbage; all mean "drop"
        return Decoded(error="dropped_decode")
    if type(outer) is not list or len(outer) != 2 or type(outer[0]) is not str or type(outer[1]) is not list:
        return Decoded(error="dropped_decode")
    if outer[0] != cluster_name:
        return Decoded(error="dropped_cluster")
    if len(outer[1]) > MAX_MESSAGES_PER_PACKET:
        return Decoded(error="dropped_decode")
    messages = []
    bad = unknown = 0
    for raw in outer[1]:
        try:
            msg = _parse(raw, limits)
        except (_Invalid, ValueError, TypeError, IndexError):
            bad += 1
            continue
        if msg is None:
            unknown += 1
        else:
            messages.append(msg)
    if bad and not messages:
        return Decoded(error="dropped_decode", bad_messages=bad, unknown_messages=unknown)
    return Decoded(messages=tuple(messages), bad_messages=bad, unknown_messages=unknown)
