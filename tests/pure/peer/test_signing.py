"""Request signing: HMAC over method, path, body, time, nonce, sender and target,
verified against a key ring, with skew and replay protection on a task.Clock."""

import base64
import itertools

import pytest
from twisted.internet import task

from zund.cluster import signing

KEY = b"a" * 32
NEW_KEY = b"b" * 32
PATH = "/v1/peer/bid?x=1"
BODY = b"\x81\xa1k\xa1v"


def make(keys_signer=(KEY,), keys_verifier=(KEY,), skew=30.0, max_nonces=1000):
    clock = task.Clock()
    clock.advance(1000.0)
    counter = itertools.count()
    signer = signing.Signer("n1", list(keys_signer), clock,
                            nonce_source=lambda: f"nonce{next(counter)}")
    verifier = signing.Verifier("n2", list(keys_verifier), clock, skew_s=skew,
                                max_nonces=max_nonces)
    return clock, signer, verifier


def reason(verifier, method, path, body, headers):
    with pytest.raises(signing.SignatureInvalid) as info:
        verifier.verify(method, path, body, headers)
    return info.value.reason


def test_good_signature_names_the_sender():
    """A correctly signed request verifies and yields the sender's node name."""
    _, signer, verifier = make()
    headers = signer.headers("POST", PATH, BODY, "n2")
    assert verifier.verify("POST", PATH, BODY, headers) == "n1"


@pytest.mark.parametrize("method,path,body", [
    ("POST", PATH, BODY + b"x"),          # tampered body
    ("POST", "/v1/peer/commit", BODY),    # other path
    ("POST", "/v1/peer/bid?x=2", BODY),   # other query
    ("PUT", PATH, BODY),                  # other method
])
def test_tampered_request_is_refused(method, path, body):
    """Changing the method, path, query or body breaks the signature."""
    _, signer, verifier = make()
    headers = signer.headers("POST", PATH, BODY, "n2")
    assert reason(verifier, method, path, body, headers) == "bad-signature"


def test_forged_sender_is_refused():
    """The sender name is signed: relabelling a request breaks it."""
    _, signer, verifier = make()
    headers = signer.headers("POST", PATH, BODY, "n2")
    headers[signing.HEADER_NODE] = "n3"
    assert reason(verifier, "POST", PATH, BODY, headers) == "bad-signature"


def test_request_for_another_node_is_refused():
    """A request addressed to n3 cannot be replayed to n2."""
    _, signer, verifier = make()
    headers = signer.headers("POST", PATH, BODY, "n3")
    assert reason(verifier, "POST", PATH, BODY, headers) == "wrong-target"


def test_wrong_key_is_refused():
    """A signer outside the cluster's key ring is refused."""
    _, signer, verifier = make(keys_signer=(NEW_KEY,), keys_verifier=(KEY,))
    headers = signer.headers("POST", PATH, BODY, "n2")
    assert reason(verifier, "POST", PATH, BODY, headers) == "bad-signature"


def test_rotated_key_is_accepted_by_either_side_of_the_rotation():
    """Every key of the ring verifies: old and new primaries both pass mid-rotation."""
    _, old_signer, verifier = make(keys_signer=(KEY,), keys_verifier=(NEW_KEY, KEY))
    _, new_signer, _ = make(keys_signer=(NEW_KEY,))
    h_old = old_signer.headers("POST", PATH, BODY, "n2")
    assert verifier.verify("POST", PATH, BODY, h_old) == "n1"
    new_signer._nonce_source = lambda: "other-nonce"  # noqa: distinct nonce, same clock
    h_new = new_signer.headers("POST", PATH, BODY, "n2")
    assert verifier.verify("POST", PATH, BODY, h_new) == "n1"


def test_stale_timestamp_is_refused_both_directions():
    """A timestamp more than skew_s off the verifier's clock, either way, is refused."""
    clock, signer, verifier = make(skew=30.0)
    headers = signer.headers("POST", PATH, BODY, "n2")
    clock.advance(30.5)
    assert reason(verifier, "POST", PATH, BODY, headers) == "stale"
    future = signer.headers("POST", PATH, BODY, "n2")
    clock.advance(-61.0)  # Clock.advance refuses negatives on some versions
    assert reason(verifier, "POST", PATH, BODY, future) == "stale"


def test_within_skew_is_accepted():
    """A request 29 s old still verifies."""
    clock, signer, verifier = make(skew=30.0)
    headers = signer.headers("POST", PATH, BODY, "n2")
    clock.advance(29.0)
    assert verifier.verify("POST", PATH, BODY, headers) == "n1"


def test_replayed_nonce_is_refused():
    """The same signed request twice: the second is a replay."""
    _, signer, verifier = make()
    headers = signer.headers("POST", PATH, BODY, "n2")
    verifier.verify("POST", PATH, BODY, headers)
    assert reason(verifier, "POST", PATH, BODY, headers) == "replayed"


def test_nonces_expire_after_twice_the_skew():
    """The nonce cache forgets entries after 2 x skew (their timestamps are stale by then)."""
    clock, signer, verifier = make(skew=10.0)
    verifier.verify("POST", PATH, BODY, signer.headers("POST", PATH, BODY, "n2"))
    assert len(verifier.nonces) == 1
    clock.advance(20.5)
    verifier.verify("POST", PATH, BODY, signer.headers("POST", PATH, BODY, "n2"))
    assert len(verifier.nonces) == 1


def test_full_nonce_cache_never_allows_a_replay():
    """When the bounded cache evicts a nonce, older-stamped requests are refused."""
    clock, signer, verifier = make(max_nonces=2)
    first = signer.headers("POST", PATH, BODY, "n2")
    verifier.verify("POST", PATH, BODY, first)
    for _ in range(2):
        clock.advance(1.0)
        verifier.verify("POST", PATH, BODY, signer.headers("POST", PATH, BODY, "n2"))
    assert len(verifier.nonces) == 2
    assert reason(verifier, "POST", PATH, BODY, first) == "nonce-evicted"


def test_unsigned_and_malformed_headers_are_refused():
    """Missing headers, a non-numeric or infinite timestamp are refused before any HMAC."""
    _, signer, verifier = make()
    assert reason(verifier, "POST", PATH, BODY, {}) == "missing-headers"
    headers = signer.headers("POST", PATH, BODY, "n2")
    for bad in ("soon", "inf", "nan"):
        assert reason(verifier, "POST", PATH, BODY,
                      dict(headers, **{signing.HEADER_TIMESTAMP: bad})) == "malformed"


def test_forged_requests_do_not_fill_the_nonce_cache():
    """Only verified requests record their nonce."""
    _, signer, verifier = make()
    headers = signer.headers("POST", PATH, BODY, "n2")
    headers[signing.HEADER_SIGNATURE] = "0" * 64
    reason(verifier, "POST", PATH, BODY, headers)
    assert len(verifier.nonces) == 0


def test_peer_keys_derive_from_gossip_keys():
    """Each gossip key yields its own HMAC key (not the AES key itself), in order."""
    k1, k2 = base64.b64encode(KEY).decode(), base64.b64encode(NEW_KEY).decode()
    ring = signing.peer_keys([k1, k2], "zund")
    assert ring.secure is True
    assert ring.keys == (signing.derive_key(KEY, "zund"), signing.derive_key(NEW_KEY, "zund"))
    assert KEY not in ring.keys and NEW_KEY not in ring.keys
    assert all(len(k) == 32 for k in ring.keys)


def test_every_node_of_a_cluster_derives_the_same_key_and_other_clusters_do_not():
    """HKDF over the gossip key with the cluster name: same inputs, same key; another
    cluster sharing the gossip key gets another peer key."""
    k1 = base64.b64encode(KEY).decode()
    node_a, node_b = signing.peer_keys([k1], "zund"), signing.peer_keys([k1], "zund")
    other = signing.peer_keys([k1], "other")
    assert node_a.keys == node_b.keys
    assert node_a.keys != other.keys


def test_derive_key_is_rfc5869_hkdf_sha256():
    """The derivation is the standard HKDF (RFC 5869 test case 1), not a hand-made hash."""
    ikm = bytes.fromhex("0b" * 22)
    salt = bytes.fromhex("000102030405060708090a0b0c")
    info = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9")
    okm = signing.derive_key(ikm, salt.decode("ascii"), info)  # the salt is the cluster name
    assert okm == bytes.fromhex(
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf")


def test_no_gossip_keys_means_an_insecure_cluster_name_key():
    """Without keys, nodes of one cluster still agree, but the ring says it is not secure."""
    a, b, c = (signing.peer_keys([], "zund"), signing.peer_keys([], "zund"),
               signing.peer_keys([], "other"))
    assert a.secure is False and a.keys == b.keys and a.keys != c.keys


def test_bad_base64_key_is_an_error():
    """A key that is not base64 fails loudly at start-up."""
    with pytest.raises(ValueError):
        signing.peer_keys(["not base64!"], "zund")
