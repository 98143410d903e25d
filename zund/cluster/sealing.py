"""Confidential peer RPC bodies: AES-256-GCM with the cluster key ring.

Pure: no sockets, no reactor; randomness (the GCM nonces) comes from an
injected ``random_bytes`` (``os.urandom`` by default).

Why: peer bodies carry tenants' environments, commands, archives and the
caller's identity; the HMAC signature (``zund.cluster.signing``) proves who sent
a request but lets anyone on the path read it. Sealing makes requests AND
answers unreadable and unforgeable without a key of the ring.

Keys: one AES key per ``[gossip] keys`` entry, derived by HKDF-SHA256 (as the
signing keys are, with a different purpose label, so no key serves two
purposes). ``keys[0]`` seals; every key opens — the gossip keyring's rotation
(install a new key everywhere, make it primary, then remove the old one) works
unchanged, with no downtime. With no ``[gossip] keys`` there is no sealing at
all (plaintext, the insecure development mode that ``signing.peer_keys`` warns
about loudly).

Sealed body (``CONTENT_TYPE``)::

    0x01 (format version) | 12-byte random nonce | AES-GCM(plaintext) incl. 16-byte tag

The associated data binds a body to its place in the exchange, so a sealed body
cannot be moved elsewhere: a request to (sender, target), or the answer to the
request that carried signing nonce N (an old answer cannot be substituted for
a new one).
"""

from __future__ import annotations

import os
from typing import Callable, Sequence


from zund.cluster.signing import SEAL_PURPOSE, PeerKeys, derive_key

CONTENT_TYPE = "application/vnd.zund.sealed"
FORMAT_V1 = b"\x01"
NONCE_BYTES = 12
TAG_BYTES = 16
#: bytes a sealed body adds to its plaintext
OVERHEAD = len(FORMAT_V1) + NONCE_BYTES + TAG_BYTES
_AAD_SCHEME = b"zund-peer-seal-v1"


class Unsealable(Exception):
    """A body that no key of the ring opens: wrong key, tampered, truncated, or not
    sealed at all. ``reason`` is a stable short word for logs and counters."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def derive_seal_key(key_material: bytes, cluster_name: str) -> bytes:
    """A 32-byte AES-256 key: HKDF-SHA256 of one ``[gossip] keys`` entry, salted with
    the cluster name, labelled for this purpose. Every node derives the same key."""
    return derive_key(key_material, cluster_name, SEAL_PURPOSE)


def request_aad(sender: str, target: str) -> bytes:
    """Associated data of a request from ``sender`` to ``target``."""
    return b"\n".join([_AAD_SCHEME, b"request", sender.encode("utf-8"),
                       target.encode("utf-8")])


def answer_aad(sender: str, target: str, request_nonce: str) -> bytes:
    """Associated data of the answer to the request ``sender`` → ``target`` that
    carried the signing nonce ``request_nonce``."""
    return b"\n".join([_AAD_SCHEME, b"answer", sender.encode("utf-8"),
                       target.encode("utf-8"), request_nonce.encode("utf-8")])


class Sealer:
    """Seals with ``keys[0]``, opens with any key (32-byte AES keys, already derived).

    Who may call: the peer client and the peer server of one node; thread-free."""

    def __init__(self, keys: Sequence[bytes],
                 random_bytes: Callable[[int], bytes] = os.urandom):
        if not keys:
            raise ValueError("a sealer needs at least one key")
        from cryptography.exceptions import InvalidTag  # only a sealing node loads it
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._ciphers = tuple(AESGCM(bytes(k)) for k in keys)
        self._invalid_tag = InvalidTag
        self._random_bytes = random_bytes

    @classmethod
    def from_gossip_keys(cls, raw_keys: Sequence[bytes], cluster_name: str,
                         random_bytes: Callable[[int], bytes] = os.urandom) -> "Sealer":
        """From the decoded ``[gossip] keys`` (raw bytes, primary first)."""
        return cls([derive_seal_key(k, cluster_name) for k in raw_keys], random_bytes)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = self._random_bytes(NONCE_BYTES)
        if len(nonce) != NONCE_BYTES:
            raise ValueError("random_bytes returned the wrong length")
        return FORMAT_V1 + nonce + self._ciphers[0].encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        """The plaintext, or :class:`Unsealable`."""
        if len(sealed) < OVERHEAD:
            raise Unsealable("truncated")
        if sealed[:1] != FORMAT_V1:
            raise Unsealable("unknown-format")
        nonce = sealed[1:1 + NONCE_BYTES]
        body = sealed[1 + NONCE_BYTES:]
        for cipher in self._ciphers:  # rotation: the key that sealed may be any of ours
            try:
                return cipher.decrypt(nonce, body, aad)
            except self._invalid_tag:
                continue
        raise Unsealable("bad-seal")


def sealer_for(ring: PeerKeys,
               random_bytes: Callable[[int], bytes] = os.urandom) -> Sealer | None:
    """The node's sealer from its peer key ring (``signing.peer_keys``), or None when
    no ``[gossip] keys`` are configured (plaintext: the warned insecure mode)."""
    return Sealer(ring.seal_keys, random_bytes) if ring.seal_keys else None
