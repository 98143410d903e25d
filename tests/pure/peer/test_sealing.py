"""Sealing peer bodies: AES-256-GCM with keys derived from the gossip keyring (pure)."""

import base64
import itertools

import pytest

from zund.cluster import sealing, signing

OLD = b"o" * 32
NEW = b"n" * 32
AAD = sealing.request_aad("n1", "n2")
SECRET = b"DB_PASSWORD=hunter2"


def _counter_bytes():
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


def ring(*raw):
    return signing.peer_keys([base64.b64encode(k).decode() for k in raw], "zund-test")


def test_sealed_body_opens_and_hides_the_plaintext():
    """What is sealed opens to the same bytes; the sealed bytes do not contain them."""
    s = sealing.sealer_for(ring(OLD))
    sealed = s.seal(SECRET, AAD)
    assert SECRET not in sealed and b"hunter2" not in sealed
    assert len(sealed) == len(SECRET) + sealing.OVERHEAD
    assert s.open(sealed, AAD) == SECRET


def test_each_seal_uses_a_fresh_nonce():
    """Two seals of the same body differ (a GCM nonce is never reused)."""
    s = sealing.Sealer(ring(OLD).seal_keys, _counter_bytes())
    assert s.seal(SECRET, AAD) != s.seal(SECRET, AAD)


def test_keys_rotate_without_downtime():
    """A ring [new, old] opens what [old] and [old, new] seal, and they open what it
    seals: install the new key everywhere, then make it primary, then drop the old."""
    old_only, during, after = (sealing.sealer_for(ring(OLD)),
                               sealing.sealer_for(ring(NEW, OLD)),
                               sealing.sealer_for(ring(NEW)))
    installed = sealing.sealer_for(ring(OLD, NEW))
    assert during.open(old_only.seal(SECRET, AAD), AAD) == SECRET
    assert installed.open(during.seal(SECRET, AAD), AAD) == SECRET
    assert during.open(installed.seal(SECRET, AAD), AAD) == SECRET
    with pytest.raises(sealing.Unsealable):
        after.open(old_only.seal(SECRET, AAD), AAD)


@pytest.mark.parametrize("mutate,reason", [
    (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "bad-seal"),        # tag flipped
    (lambda b: b[:20] + bytes([b[20] ^ 1]) + b[21:], "bad-seal"),  # ciphertext flipped
    (lambda b: b[:10], "truncated"),
    (lambda b: b"\x02" + b[1:], "unknown-format"),
])
def test_tampered_body_is_refused(mutate, reason):
    """Any change to a sealed body is detected, with a stable reason for counters."""
    s = sealing.sealer_for(ring(OLD))
    with pytest.raises(sealing.Unsealable) as e:
        s.open(mutate(s.seal(SECRET, AAD)), AAD)
    assert e.value.reason == reason


def test_a_body_sealed_for_one_place_does_not_open_in_another():
    """The associated data binds a request to (sender, target) and an answer to its
    request's nonce: moved elsewhere, it does not open."""
    s = sealing.sealer_for(ring(OLD))
    answer = s.seal(SECRET, sealing.answer_aad("n1", "n2", "nonce-1"))
    for aad in (sealing.answer_aad("n1", "n2", "nonce-2"), sealing.request_aad("n1", "n2"),
                sealing.answer_aad("n3", "n2", "nonce-1")):
        with pytest.raises(sealing.Unsealable):
            s.open(answer, aad)
    with pytest.raises(sealing.Unsealable):
        s.open(s.seal(SECRET, sealing.request_aad("n1", "n2")), sealing.request_aad("n1", "n3"))


def test_seal_keys_are_derived_for_their_own_purpose():
    """The AES keys differ from the HMAC keys and from the gossip key itself, and each
    node derives the same ones; another cluster name derives others."""
    r = ring(OLD)
    assert len(r.seal_keys) == 1 and len(r.seal_keys[0]) == 32
    assert r.seal_keys[0] not in (OLD, r.keys[0])
    assert ring(OLD).seal_keys == r.seal_keys
    other = signing.peer_keys([base64.b64encode(OLD).decode()], "another")
    assert other.seal_keys != r.seal_keys


def test_no_keys_means_no_sealing():
    """Without [gossip] keys there is nothing secret to seal with: plaintext (warned)."""
    insecure = signing.peer_keys([], "zund-test")
    assert not insecure.secure and insecure.seal_keys == ()
    assert sealing.sealer_for(insecure) is None
