"""The peer codec: records, actions, contexts, errors and typed values survive a
round trip; hostile input becomes WireError."""

import datetime

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zund.cluster import wire
from zund.cluster.types import Bid, Decline
from zund.common import errors
from zund.common.context import RequestContext
from zund.runtimes.base import ExecResult
from zund.records import ActionEvent, ActionRecord, ContainerRecord

T0 = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456)

text = st.text(max_size=20)
keys = st.text(min_size=1, max_size=10)
scalars = st.none() | st.booleans() | st.integers(-2**40, 2**40) | text
json_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(keys, inner, max_size=3), max_leaves=8)
times = st.none() | st.datetimes(min_value=datetime.datetime(2000, 1, 1),
                                 max_value=datetime.datetime(2100, 1, 1))

records = st.builds(
    ContainerRecord,
    uuid=st.uuids().map(str), project_id=text, user_id=text, image=text,
    name=st.none() | text, id=st.none() | st.integers(0, 2**31),
    status=st.sampled_from(["Creating", "Running", "Stopped", "Error"]),
    command=st.none() | st.lists(text, max_size=4),
    cpu=st.none() | st.floats(0.1, 64, allow_nan=False),
    memory=st.none() | st.integers(4, 2**20),
    environment=st.dictionaries(keys, text, max_size=4),
    labels=st.dictionaries(keys, text, max_size=4),
    restart_policy=st.none() | st.dictionaries(keys, json_like, max_size=2),
    exposed_ports=st.dictionaries(keys, st.dictionaries(keys, json_like, max_size=1), max_size=2),
    ports=st.lists(st.integers(1, 65535), max_size=3),
    hints=st.dictionaries(keys, json_like, max_size=3),
    privileged=st.booleans(), exit_code=st.none() | st.integers(-255, 255),
    started_at=times, finished_at=times,
    created_at=times.filter(lambda t: t is not None), updated_at=times,
)


@settings(max_examples=200, deadline=None)
@given(records)
def test_record_round_trips(rec):
    """Any ContainerRecord comes back equal, both inside a message and as a dict."""
    assert wire.unpack(wire.pack({"record": rec}))["record"] == rec
    assert wire.record_from_dict(wire.record_to_dict(rec)) == rec


def test_record_dict_has_iso_times_and_ignores_unknown_fields():
    """Datetimes travel as ISO strings; fields from a newer peer are ignored."""
    rec = ContainerRecord(uuid="u", project_id="p", user_id="x", image="i", created_at=T0)
    d = wire.record_to_dict(rec)
    assert d["created_at"] == "2024-05-06T07:08:09.123456"
    assert wire.record_from_dict(d | {"from_the_future": 1}) == rec


def test_action_with_events_round_trips():
    """ActionRecord and its ActionEvents come back equal."""
    act = ActionRecord(container_uuid="u", action="start", request_id="req-1", user_id="x",
                       project_id="p", start_time=T0, finish_time=None, message=None, id=3,
                       events=[ActionEvent(event="compute__do_container_start", start_time=T0,
                                           finish_time=T0, result="Success",
                                           details={"a": [1]})])
    assert wire.unpack(wire.pack({"result": [act]}))["result"] == [act]


def test_typed_values_round_trip():
    """ExecResult, bytes, tuples and datetimes keep their types; a user dict that
    looks like a tag stays a dict."""
    value = {"exec": ExecResult(exit_code=1, output="oops"), "raw": b"\x00\xff",
             "pair": (b"tar", {"name": "f"}), "t": T0, "user": {"__t": "record"}}
    assert wire.unpack(wire.pack(value)) == value


def test_unsendable_value_is_a_type_error():
    """Only known types go on the wire."""
    with pytest.raises(TypeError):
        wire.pack({"x": object()})


@given(st.builds(RequestContext, user_id=text, project_id=text,
                 roles=st.lists(text, max_size=3).map(tuple), is_admin=st.booleans(),
                 request_id=text, user_name=st.none() | text))
def test_context_round_trips_without_the_token(ctx):
    """A RequestContext crosses intact, except that the Keystone token is dropped."""
    ctx = RequestContext(**{**ctx.to_dict(), "roles": ctx.roles, "auth_token": "secret"})
    back = wire.context_from_dict(wire.unpack(wire.pack({"ctx": wire.context_to_dict(ctx)}))["ctx"])
    assert back == RequestContext(**{**ctx.to_dict(), "roles": ctx.roles, "auth_token": None})


def test_bad_context_is_a_wire_error():
    """A ctx missing ids or with wrong types is refused."""
    for bad in ({}, {"user_id": 1, "project_id": "p"}, "x",
                {"user_id": "u", "project_id": "p", "is_admin": "yes"}):
        with pytest.raises(wire.WireError):
            wire.context_from_dict(bad)


@pytest.mark.parametrize("exc", [
    errors.ContainerNotFound(ident="web"),
    errors.Conflicts(name="web"),
    errors.InvalidInput(field="cpu", reason="too big"),
    errors.ContainerBusy(action="stop", uuid="u", task_state="container_starting"),
    errors.ServiceUnavailable(reason="down"),
    errors.InvalidStateException(action="start", uuid="u", status="Running"),
])
def test_errors_come_back_as_the_same_class(exc):
    """Class, message and kwargs survive the wire."""
    back = wire.error_from_dict(wire.unpack(wire.pack({"e": wire.error_to_dict(exc)}))["e"])
    assert type(back) is type(exc)
    assert str(back) == str(exc) and back.kwargs == exc.kwargs
    if isinstance(exc, errors.InvalidInput):
        assert back.field == exc.field


@pytest.mark.parametrize("d", [
    {"type": "NoSuchError", "message": "m", "kwargs": {}},
    {"type": "Logger", "message": "m"},          # a name in the module, not an error
    {"type": "ZundError", "message": "m", "kwargs": {"message": 1}},  # unbuildable
    "junk",
])
def test_unknown_errors_become_runtime_failure(d):
    """A name that is not a zund error, or junk, is RuntimeFailure."""
    assert type(wire.error_from_dict(d)) is errors.RuntimeFailure


def test_bid_and_decline_round_trip():
    """Bid and Decline answers decode to the same values."""
    for answer in (Bid("n2", "r1", 0.7, 12.5), Decline("n2", "full")):
        assert wire.bid_from_dict(wire.unpack(wire.pack(wire.bid_to_dict(answer)))) == answer


@pytest.mark.parametrize("data", [
    b"\xc1",                                  # never-used msgpack byte
    msgpack.packb({1: "int key"}),            # strict_map_key
    msgpack.packb({"a": 1}) + b"\x00",        # trailing data
    msgpack.packb(msgpack.ExtType(99, b"")),  # unknown ext
    msgpack.packb(msgpack.ExtType(wire.EXT_RECORD, msgpack.packb([1]))),  # bad record
    msgpack.packb(msgpack.ExtType(wire.EXT_TIME, msgpack.packb("yesterday"))),
    b"",
])
def test_malformed_messages_are_wire_errors(data):
    """Garbage never raises anything but WireError."""
    with pytest.raises(wire.WireError):
        wire.unpack(data)


def test_size_is_checked_before_decoding():
    """A message over the bound is refused whole."""
    with pytest.raises(wire.WireError):
        wire.unpack(wire.pack({"x": b"a" * 2000}), max_bytes=1000)


def test_unpack_map_requires_a_map():
    with pytest.raises(wire.WireError):
        wire.unpack_map(wire.pack([1, 2]))
