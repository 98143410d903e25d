"""Pure tier: codec round trips (Hypothesis), decoder fuzzing, keyring rotation."""

import random

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from zund.gossip import codec
from zund.gossip.codec import (
    Ack, Alive, Dead, IndirectPing, Limits, Nack, Ping, PushPull, PushPullState, Suspect)
from zund.gossip.keyring import Keyring
from zund.gossip.member import MemberState

LIMITS = Limits(max_size=1400)
STREAM = Limits(max_size=8 * 1024 * 1024)
KEY1, KEY2 = b"1" * 32, b"2" * 32

names = st.text(min_size=1, max_size=40)
ints = st.integers(min_value=0, max_value=2**63 - 1)
seqs = st.integers(min_value=0, max_value=2**32 - 1)
addrs = st.tuples(st.text(min_size=1, max_size=30), st.integers(min_value=0, max_value=65535))
metas = st.binary(max_size=1024)

messages = st.one_of(
    st.builds(Ping, seqs, names, names, addrs),
    st.builds(IndirectPing, seqs, names, addrs, st.booleans(), names, addrs),
    st.builds(Ack, seqs),
    st.builds(Nack, seqs),
    st.builds(Suspect, ints, names, names),
    st.builds(Alive, ints, names, addrs, st.binary(max_size=64), ints),
    st.builds(Dead, ints, names, names),
)
states = st.builds(PushPullState, names, addrs, ints, st.sampled_from(list(MemberState)), metas, ints)


@given(st.lists(messages, min_size=1, max_size=8), st.booleans())
@settings(max_examples=300, deadline=None)
def test_messages_round_trip(msgs, encrypted):
    """Every message type survives encode -> decode, plain or encrypted."""
    ring = Keyring([KEY1]) if encrypted else Keyring()
    data = codec.encode_packet("zund", msgs, ring)
    decoded = codec.decode_packet(data, "zund", ring, STREAM)
    assert decoded.error is None
    assert list(decoded.messages) == msgs


@given(st.booleans(), st.lists(states, max_size=20))
@settings(max_examples=100, deadline=None)
def test_push_pull_round_trip(join, sts):
    data = codec.encode_packet("zund", [PushPull(join, tuple(sts))], None)
    assert codec.decode_packet(data, "zund", None, STREAM).messages == (PushPull(join, tuple(sts)),)


def test_packet_overhead_is_an_upper_bound():
    """packet_overhead covers header, encryption and the compound framing."""
    msgs = [Ack(1), Ack(2)]
    body_size = sum(codec.message_size(m) for m in msgs)
    enc = codec.encode_packet("zund", msgs, Keyring([KEY1]))
    assert len(enc) == body_size + codec.packet_overhead("zund")


def _drop_reason(data, ring=None, cluster="zund"):
    return codec.decode_packet(data, cluster, ring, LIMITS).error


def test_hostile_packets_are_classified():
    """Each kind of bad packet is dropped with its own counter name."""
    good = codec.encode_packet("zund", [Ack(1)], None)
    assert _drop_reason(good, cluster="other") == "dropped_cluster"
    assert _drop_reason(b"\x09" + good[1:]) == "dropped_version"
    assert _drop_reason(good[:2] + b"\xc1\xc1\xc1") == "dropped_decode"
    assert _drop_reason(b"x" * 2000) == "dropped_oversize"
    assert _drop_reason(good, Keyring([KEY1])) == "dropped_decrypt"  # plaintext refused
    enc = codec.encode_packet("zund", [Ack(1)], Keyring([KEY1]))
    assert _drop_reason(enc, Keyring([KEY2])) == "dropped_decrypt"
    assert _drop_reason(enc, None) == "dropped_decrypt"
    assert _drop_reason(enc[:-1] + bytes([enc[-1] ^ 1]), Keyring([KEY1])) == "dropped_decrypt"


def test_maps_and_wrong_types_are_rejected():
    """strict shapes: maps, wrong field types or arity drop the message."""
    def packet(*raw_msgs):
        return b"\x01\x00" + msgpack.packb(["zund", list(raw_msgs)], use_bin_type=True)
    assert _drop_reason(packet({"a": 1})) == "dropped_decode"
    assert _drop_reason(packet([2, "not-int"])) == "dropped_decode"
    assert _drop_reason(packet([2, 1, 2])) == "dropped_decode"
    too_much_meta = packet([5, 1, "n", ["h", 1], b"x" * 2000, 1])
    assert codec.decode_packet(too_much_meta, "zund", None, STREAM).error == "dropped_decode"
    partial = codec.decode_packet(packet([2, 5], [2, "x"]), "zund", None, LIMITS)
    assert partial.messages == (Ack(5),) and partial.bad_messages == 1


def test_unknown_future_message_types_are_skipped():
    """Append-only enum: a newer peer's message type is skipped, the rest kept."""
    data = b"\x01\x00" + msgpack.packb(["zund", [[200, "future"], [2, 9]]], use_bin_type=True)
    decoded = codec.decode_packet(data, "zund", None, LIMITS)
    assert decoded.messages == (Ack(9),) and decoded.unknown_messages == 1


MESSAGE_TYPES = (Ping, IndirectPing, Ack, Nack, Suspect, Alive, Dead, PushPull)
DROP_COUNTERS = {"dropped_decrypt", "dropped_decode", "dropped_cluster", "dropped_version",
                 "dropped_oversize"}


@given(st.binary(max_size=1500))
@settings(max_examples=2000, deadline=None)
def test_random_bytes_never_raise(data):
    """Fuzz: arbitrary bytes decode without raising, to a counted drop with no
    messages or to well-typed messages; with a key ring, never to messages."""
    for ring in (None, Keyring([KEY1])):
        decoded = codec.decode_packet(data, "zund", ring, LIMITS)
        if decoded.error is None:
            assert all(isinstance(m, MESSAGE_TYPES) for m in decoded.messages)
        else:
            assert decoded.error in DROP_COUNTERS and decoded.messages == ()
        if ring is not None:
            assert decoded.error is not None  # unauthenticated bytes never pass


def test_mutated_packets_never_raise():
    """Fuzz: bit flips, truncations and splices of valid packets never raise."""
    rng = random.Random(1234)
    base = [
        codec.encode_packet("zund", [Ping(1, "a", "b", ("127.0.0.1", 1)), Alive(3, "n", ("h", 2), b"m", 1)], None),
        codec.encode_packet("zund", [PushPull(True, (PushPullState("n", ("h", 1), 1, MemberState.ALIVE, b"", 0),))],
                            None),
        codec.encode_packet("zund", [IndirectPing(1, "t", ("h", 1), True, "s", ("h", 2))], None),
    ]
    errors = {}
    for _ in range(20_000):
        data = bytearray(rng.choice(base))
        op = rng.randrange(4)
        if op == 0:
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(2, len(data))
                data[i] = rng.randrange(256)
        elif op == 1:
            del data[rng.randrange(2, len(data)):]
        elif op == 2:
            i = rng.randrange(2, len(data))
            data[i:i] = rng.randbytes(rng.randint(1, 20))
        else:
            data = data[:2] + rng.choice(base)[2:rng.randrange(3, 40)] + data[rng.randrange(2, len(data)):]
        decoded = codec.decode_packet(bytes(data), "zund", None, STREAM)
        key = decoded.error or "ok"
        errors[key] = errors.get(key, 0) + 1
    assert errors.get("dropped_decode", 0) > 1000  # most mutations are caught and counted


def test_keyring_rotation():
    """Primary encrypts, any installed key decrypts; rotate add -> use -> remove."""
    old, new = Keyring([KEY1]), Keyring([KEY1])
    new.add_key(KEY2)
    assert new.primary == KEY1
    assert new.decrypt(old.encrypt(b"x", b"h"), b"h") == b"x"
    new.use_key(KEY2)
    assert old.decrypt(new.encrypt(b"y", b"h"), b"h") is None  # old node lacks KEY2
    old.add_key(KEY2)
    assert old.decrypt(new.encrypt(b"y", b"h"), b"h") == b"y"
    with pytest.raises(ValueError):
        new.remove_key(KEY2)  # the primary cannot be removed
    new.remove_key(KEY1)
    assert new.keys == [KEY2]
    assert new.decrypt(old.encrypt(b"z", b"h"), b"h") is None  # old still encrypts with KEY1


def test_keyring_validates_keys():
    with pytest.raises(ValueError):
        Keyring([b"short"])
    with pytest.raises(ValueError):
        Keyring.from_base64(["not base64!!"])
    import base64
    assert Keyring.from_base64([base64.b64encode(KEY1).decode()]).primary == KEY1
    assert not Keyring().enabled


@pytest.mark.parametrize("text, default, expected", [
    ("127.0.0.1:9519", None, ("127.0.0.1", 9519)),
    (" 127.0.0.2 ", 9519, ("127.0.0.2", 9519)),
    ("[::1]:7946", None, ("::1", 7946)),
    ("node-1.example:1", 9519, ("node-1.example", 1)),
    ("127.0.0.1", None, ValueError),     # no port and no default
    ("127.0.0.1:0", None, ValueError),
    ("127.0.0.1:65536", None, ValueError),
    ("host:port", None, ValueError),
    ("[::1", 9519, ValueError),
    (":9519", None, ValueError),
])
def test_addresses_parse_or_are_refused(text, default, expected):
    """Seeds and bind addresses: host:port and [v6]:port parse; junk is a ValueError."""
    from zund.gossip.member import parse_addr
    if expected is ValueError:
        with pytest.raises(ValueError):
            parse_addr(text, default)
    else:
        assert parse_addr(text, default) == expected
