"""Request signing for peer RPC: HMAC-SHA256 with the cluster key ring.

Pure: no sockets, no reactor; time comes from an injected ``clock`` (anything with
``seconds()``), nonces from an injected ``nonce_source``.

What is signed (one canonical byte string, fields joined by ``\\n``)::

    zund-peer-v1 / METHOD / path incl. query / hex sha256(body) /
    timestamp / nonce / sender node / target node

The target node is signed too, so a request captured on its way to node B cannot
be replayed to node C (each node has its own nonce cache).

Keys: the ``[gossip] keys`` ring (first signs, every key verifies: rotation as in
memberlist's keyring). The same ring also yields the AES-GCM keys that seal the
bodies (``zund.cluster.sealing``; the signature then covers the sealed bytes).
The HMAC key is derived from each gossip key with a purpose label, so the AES-GCM
gossip key is never used directly for a second purpose. With no gossip keys, a key derived from the cluster name is used: it
keeps dev clusters working but is NOT secret — :func:`peer_keys` logs a loud
warning (event ``peer.insecure_key``) and marks the ring ``secure=False``.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
import math
import secrets
from typing import Callable, Mapping, Sequence

import attrs
from twisted.logger import Logger

log = Logger()

SCHEME = b"zund-peer-v1"

HEADER_NODE = "Zund-Peer-Node"
HEADER_TARGET = "Zund-Peer-Target"
HEADER_TIMESTAMP = "Zund-Peer-Timestamp"
HEADER_NONCE = "Zund-Peer-Nonce"
HEADER_SIGNATURE = "Zund-Peer-Signature"

_MAX_NONCE_LEN = 64
_MAX_NODE_LEN = 255
#: HKDF ``info`` labels: what a derived key is for (bump the version to rotate all)
_PURPOSE = b"zund peer rpc hmac v2"
_INSECURE_PURPOSE = b"zund insecure peer rpc hmac v2"
_INSECURE_MATERIAL = b"zund: no [gossip] keys configured"
#: HKDF ``info`` label of the AES-GCM keys that seal peer bodies (zund.cluster.sealing)
SEAL_PURPOSE = b"zund peer rpc aes-256-gcm v1"


class SignatureInvalid(Exception):
    """A request failed verification. ``reason`` is a stable short word for logs
    and counters (never shown to the peer in more detail than "unauthorized")."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@attrs.frozen
class PeerKeys:
    """The HMAC keys for peer RPC. ``keys[0]`` signs; all verify."""

    keys: tuple[bytes, ...]
    #: False when derived from the cluster name (no ``[gossip] keys``): anyone who
    #: knows the cluster name can forge requests.
    secure: bool
    #: the AES-256-GCM keys that seal bodies (``keys[0]`` seals, all open); empty
    #: when insecure: bodies then travel in plaintext
    seal_keys: tuple[bytes, ...] = ()


def derive_key(key_material: bytes, cluster_name: str, purpose: bytes = _PURPOSE) -> bytes:
    """A 32-byte HMAC key for peer RPC: HKDF-SHA256 (RFC 5869) of ``key_material``
    with the cluster name as salt and ``purpose`` as info. Domain separation: the
    AES-GCM gossip key is never used directly for a second purpose, and the same
    key in two clusters yields two peer keys. Every node derives the same key."""
    # RFC 5869 with the stdlib's HMAC (one expand block: 32 bytes = SHA-256's size);
    # equal to cryptography's HKDF (tests/pure), without loading cryptography in a
    # node that seals nothing (issue 13 §5: ~6 MB RSS)
    prk = hmac.new(cluster_name.encode("utf-8"), key_material, hashlib.sha256).digest()
    return hmac.new(prk, purpose + b"\x01", hashlib.sha256).digest()


def peer_keys(gossip_keys_b64: Sequence[str], cluster_name: str) -> PeerKeys:
    """Build the peer key ring from the ``[gossip] keys`` option (base64 strings).

    Raises ValueError on a key that is not base64 (as the gossip keyring does)."""
    raw = []
    for text in gossip_keys_b64:
        try:
            raw.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError) as e:
            raise ValueError("gossip key is not valid base64") from e
    if raw:
        return PeerKeys(tuple(derive_key(k, cluster_name) for k in raw), secure=True,
                        seal_keys=tuple(derive_key(k, cluster_name, SEAL_PURPOSE)
                                        for k in raw))
    # no secret at all: the key material is public (the cluster name is the salt)
    insecure = derive_key(_INSECURE_MATERIAL, cluster_name, _INSECURE_PURPOSE)
    log.warn("peer.insecure_key: [gossip] keys is empty, so peer RPC is signed with a key "
             "derived from the cluster name {cluster_name!r} and NOT encrypted. This is NOT "
             "secure: anyone who can reach port 9518 and knows the name can create, read and "
             "delete containers, and anyone on the path reads tenants' data. "
             "Set [gossip] keys.", cluster_name=cluster_name)
    return PeerKeys((insecure,), secure=False)


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def canonical(method: str, path: str, body: bytes, timestamp: str, nonce: str,
              sender: str, target: str) -> bytes:
    """The signed byte string. ``path`` is the request target as sent (with query)."""
    parts = [SCHEME, method.upper().encode("ascii"), path.encode("utf-8"),
             body_digest(body).encode("ascii"), timestamp.encode("ascii"),
             nonce.encode("ascii"), sender.encode("utf-8"), target.encode("utf-8")]
    return b"\n".join(parts)


def _mac(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _default_nonce() -> str:
    return secrets.token_hex(16)


class Signer:
    """Signs outgoing requests of node ``node_name`` with ``keys[0]``."""

    def __init__(self, node_name: str, keys: Sequence[bytes], clock,
                 nonce_source: Callable[[], str] = _default_nonce):
        if not keys:
            raise ValueError("a signer needs at least one key")
        self.node_name = node_name
        self._key = bytes(keys[0])
        self._clock = clock
        self._nonce_source = nonce_source

    def headers(self, method: str, path: str, body: bytes, target: str) -> dict[str, str]:
        """The signature headers for one request to node ``target``."""
        timestamp = f"{self._clock.seconds():.3f}"
        nonce = self._nonce_source()
        message = canonical(method, path, body, timestamp, nonce, self.node_name, target)
        return {
            HEADER_NODE: self.node_name,
            HEADER_TARGET: target,
            HEADER_TIMESTAMP: timestamp,
            HEADER_NONCE: nonce,
            HEADER_SIGNATURE: _mac(self._key, message),
        }


class NonceCache:
    """Nonces seen recently, bounded.

    A nonce is remembered until ``expiry`` (receipt time + 2 × skew: by then its
    timestamp is stale anyway). When the cache is full, the oldest entry is
    evicted and its timestamp raises a watermark: requests stamped at or before
    the watermark are refused, so an evicted nonce can never be replayed.
    """

    def __init__(self, max_entries: int = 100_000):
        self.max_entries = max_entries
        self._seen: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()
        self.watermark = -math.inf

    def __len__(self) -> int:
        return len(self._seen)

    def purge(self, now: float) -> None:
        while self._seen:
            nonce, (expiry, _ts) = next(iter(self._seen.items()))
            if expiry > now:
                break
            del self._seen[nonce]

    def check_and_add(self, nonce: str, timestamp: float, now: float, expiry: float) -> str | None:
        """None if fresh (and now remembered), else the reason it is refused."""
        self.purge(now)
        if nonce in self._seen:
            return "replayed"
        if timestamp <= self.watermark:
            return "nonce-evicted"
        while len(self._seen) >= self.max_entries:
            _, (_expiry, old_ts) = self._seen.popitem(last=False)
            self.watermark = max(self.watermark, old_ts)
            if timestamp <= self.watermark:
                return "nonce-evicted"
        self._seen[nonce] = (expiry, timestamp)
        return None


class Verifier:
    """Checks incoming requests addressed to node ``node_name``.

    Order: headers present and well-formed → addressed to us → timestamp within
    ``skew_s`` of our clock → signature valid under some key (constant-time
    compare) → nonce not seen. The nonce is only recorded for a request whose
    signature verified, so forged junk cannot fill the cache.
    """

    def __init__(self, node_name: str, keys: Sequence[bytes], clock, skew_s: float = 30.0,
                 max_nonces: int = 100_000):
        if not keys:
            raise ValueError("a verifier needs at least one key")
        self.node_name = node_name
        self._keys = tuple(bytes(k) for k in keys)
        self._clock = clock
        self.skew_s = skew_s
        self.nonces = NonceCache(max_nonces)

    def verify(self, method: str, path: str, body: bytes,
               headers: Mapping[str, str | None]) -> str:
        """Return the sender's node name, or raise :class:`SignatureInvalid`.

        ``headers`` maps the HEADER_* names to their (last) value or None."""
        sender = headers.get(HEADER_NODE)
        target = headers.get(HEADER_TARGET)
        ts_text = headers.get(HEADER_TIMESTAMP)
        nonce = headers.get(HEADER_NONCE)
        signature = headers.get(HEADER_SIGNATURE)
        if not (sender and target and ts_text and nonce and signature):
            raise SignatureInvalid("missing-headers")
        if len(sender) > _MAX_NODE_LEN or len(target) > _MAX_NODE_LEN:
            raise SignatureInvalid("malformed")
        if len(nonce) > _MAX_NONCE_LEN or not nonce.isascii() or not nonce.isprintable():
            raise SignatureInvalid("malformed")
        if len(ts_text) > 32 or not ts_text.isascii():
            raise SignatureInvalid("malformed")
        try:
            timestamp = float(ts_text)
        except ValueError:
            raise SignatureInvalid("malformed") from None
        if not math.isfinite(timestamp):
            raise SignatureInvalid("malformed")
        if target != self.node_name:
            raise SignatureInvalid("wrong-target")
        now = self._clock.seconds()
        if abs(now - timestamp) > self.skew_s:
            raise SignatureInvalid("stale")
        try:
            message = canonical(method, path, body, ts_text, nonce, sender, target)
        except (UnicodeEncodeError, UnicodeDecodeError):
            raise SignatureInvalid("malformed") from None
        given = signature.encode("ascii", "replace")
        ok = False
        for key in self._keys:
            # every key is tried (no early exit) so timing does not say which matched
            ok |= hmac.compare_digest(_mac(key, message).encode("ascii"), given)
        if not ok:
            raise SignatureInvalid("bad-signature")
        refused = self.nonces.check_and_add(nonce, timestamp, now, now + 2 * self.skew_s)
        if refused is not None:
            raise SignatureInvalid(refused)
        return sender
