"""AES-GCM keyring (memberlist keyring.go + security.go).

The primary (first) key encrypts; every key is tried for decryption, so keys
rotate without downtime: install the new key everywhere, make it primary
everywhere, then remove the old one.  An empty keyring means plaintext.
"""

from __future__ import annotations

import base64
import binascii
import os


NONCE_SIZE = 12
TAG_SIZE = 16
ENCRYPT_OVERHEAD = NONCE_SIZE + TAG_SIZE
VALID_KEY_SIZES = (16, 24, 32)


class Keyring:
    """Mutable, ordered set of keys; ``keys[0]`` is the primary."""

    def __init__(self, keys=()):
        self._keys: list[bytes] = []
        self._ciphers: list = []  # AESGCM per key, same order
        for key in keys:
            self.add_key(key)

    @classmethod
    def from_base64(cls, encoded) -> "Keyring":
        """Build from base64 strings (the ``[gossip] keys`` option)."""
        keys = []
        for text in encoded:
            try:
                keys.append(base64.b64decode(text, validate=True))
            except (binascii.Error, ValueError) as e:
                raise ValueError("gossip key is not valid base64") from e
        return cls(keys)

    @staticmethod
    def generate_key() -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM.generate_key(bit_length=256)

    @property
    def keys(self) -> list[bytes]:
        return list(self._keys)

    @property
    def primary(self) -> bytes | None:
        return self._keys[0] if self._keys else None

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def add_key(self, key: bytes) -> None:
        """Install a key (secondary unless the ring was empty).  Idempotent."""
        if len(key) not in VALID_KEY_SIZES:
            raise ValueError(f"gossip key must be 16, 24 or 32 bytes, got {len(key)}")
        if key in self._keys:
            return
        # imported here: an empty (plaintext) ring never loads cryptography (~6 MB RSS)
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._keys.append(bytes(key))
        self._ciphers.append(AESGCM(key))

    def use_key(self, key: bytes) -> None:
        """Make an installed key the primary (memberlist keyring.UseKey)."""
        index = self._keys.index(key)  # ValueError if not installed
        self._keys.insert(0, self._keys.pop(index))
        self._ciphers.insert(0, self._ciphers.pop(index))

    def remove_key(self, key: bytes) -> None:
        """Remove a secondary key; the primary cannot be removed."""
        if self._keys and key == self._keys[0]:
            raise ValueError("cannot remove the primary key")
        index = self._keys.index(key)
        del self._keys[index]
        del self._ciphers[index]

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """nonce || ciphertext+tag, with the primary key.

        The nonce comes from os.urandom, never from the simulation rng: a
        repeated GCM nonce under one key is catastrophic.
        """
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._ciphers[0].encrypt(nonce, plaintext, aad)

    def decrypt(self, data: bytes, aad: bytes) -> bytes | None:
        """Try every key; None if none authenticates the data."""
        if len(data) < ENCRYPT_OVERHEAD:
            return None
        from cryptography.exceptions import InvalidTag

        nonce, body = data[:NONCE_SIZE], data[NONCE_SIZE:]
        for cipher in self._ciphers:
            try:
                return cipher.decrypt(nonce, body, aad)
            except InvalidTag:
                continue
        return None
