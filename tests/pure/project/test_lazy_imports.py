"""Pure tier: what a default node does not use is imported where it is first used
(issue 13 §5, memory): the stdlib HKDF that replaced cryptography's on the always-run
key derivation derives the same keys, and the lazily importing modules load without
cryptography, jsonschema, treq or psutil."""

from __future__ import annotations

import subprocess
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from zund.cluster import signing

#: modules whose import no longer loads these (each imports them where it uses them)
LAZY = ("zund.cluster.signing", "zund.cluster.sealing", "zund.gossip.keyring",
        "zund.gossip.member", "zund.registries", "zund.cluster.peer_client",
        "zund.api.schemas")
NOT_LOADED = ("cryptography", "jsonschema", "treq", "psutil")


def test_derive_key_equals_cryptography_hkdf_sha256():
    """RFC 5869 HKDF-SHA256 (32 bytes): the stdlib derivation gives cryptography's keys
    for empty and long salts, infos and key material (peers on either agree)."""
    for cluster in ("", "zund", "c" * 200):
        for purpose in (b"", signing.SEAL_PURPOSE, b"zund peer rpc hmac v2"):
            for material in (b"", b"k" * 16, bytes(range(32)), b"x" * 100):
                want = HKDF(algorithm=hashes.SHA256(), length=32, salt=cluster.encode(),
                            info=purpose).derive(material)
                assert signing.derive_key(material, cluster, purpose) == want


def test_lazy_modules_import_without_their_heavy_dependencies():
    """A fresh interpreter importing the lazy modules has none of cryptography,
    jsonschema, treq or psutil in ``sys.modules`` (each loads on first use)."""
    code = ("import sys\n"
            f"for m in {LAZY!r}: __import__(m)\n"
            f"print(sorted(m for m in sys.modules if m.partition('.')[0] in {NOT_LOADED!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "[]"

