"""The caller's context crosses nodes intact (pure): every identity field and both
request ids survive the peer encoding; the token never travels; bad fields are
refused as WireError."""

import pytest

from zund.cluster import messages, wire
from zund.common.context import RequestContext, valid_request_id
from zund.compute.interface import ContainerRef

GLOBAL_ID = "req-6f1d6f0e-3c1f-4b7a-9d0e-2a3b4c5d6e7f"
FULL = RequestContext(
    user_id="u-1", project_id="p-1", roles=("member", "reader"), is_admin=False,
    request_id="req-11111111-2222-4333-8444-555555555555", user_name="alice",
    project_name="projA", auth_token="gAAAA-secret-token", user_domain_id="default",
    project_domain_id="dom-2", global_request_id=GLOBAL_ID)


def test_every_field_but_the_token_crosses():
    """user, project, both domains, roles, is_admin and both request ids arrive; the
    Keystone token is dropped."""
    back = wire.context_from_dict(wire.unpack(wire.pack(wire.context_to_dict(FULL))))
    assert back == RequestContext(**{**FULL.to_dict(), "roles": FULL.roles,
                                     "auth_token": None})


def test_an_owner_call_message_carries_the_whole_context():
    """The OWNER_CALL envelope, encoded and decoded as the peer server does, holds the
    caller's context field for field (what the owner's policy check uses)."""
    msg = messages.OwnerCall(FULL, "stop", ContainerRef(ident="web", rule="container:stop"),
                             {})
    decoded = messages.decode_request(wire.unpack_map(wire.pack(messages.encode_request(msg))),
                                      "n2")
    assert decoded.ctx.to_policy_values() == FULL.to_policy_values()
    assert (decoded.ctx.request_id, decoded.ctx.global_request_id) == \
        (FULL.request_id, GLOBAL_ID)


@pytest.mark.parametrize("field,value", [
    ("user_domain_id", 3), ("project_domain_id", ["x"]), ("global_request_id", {"a": 1}),
    ("roles", [1]), ("is_admin", "yes"),
])
def test_a_context_with_a_bad_field_is_refused(field, value):
    """A malformed context is a WireError, never an exception in the server."""
    d = wire.context_to_dict(FULL) | {field: value}
    with pytest.raises(wire.WireError):
        wire.context_from_dict(d)


def test_older_peers_without_the_new_fields_still_decode():
    """A context from a node that predates domains and global ids is accepted."""
    old = {"user_id": "u", "project_id": "p", "roles": ["member"], "is_admin": False,
           "request_id": "req-1"}
    ctx = wire.context_from_dict(old)
    assert ctx.user_domain_id is None and ctx.global_request_id is None


@pytest.mark.parametrize("value,ok", [
    (GLOBAL_ID, True), ("req-not-a-uuid", False), ("6f1d6f0e-3c1f-4b7a-9d0e-2a3b4c5d6e7f", False),
    (GLOBAL_ID + "\nforged log line", False), ("", False), (None, False),
])
def test_only_req_uuid_global_request_ids_are_accepted(value, ok):
    """oslo.middleware's rule: an inbound X-OpenStack-Request-ID counts only as req-<uuid>."""
    assert valid_request_id(value) == (value if ok else None)
