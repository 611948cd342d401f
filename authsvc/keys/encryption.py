"""Private keys at rest: PKCS#8 PEM, encrypted with the passphrase when one is set.

Why not ``BestAvailableEncryption``: for PKCS#8 it is PBES2 with PBKDF2 at
2,048 iterations, which a GPU walks through quickly once a database or key
file leaks. We want PBES2 / PBKDF2-HMAC-SHA256 at ``KDF_ITERATIONS`` with
AES-256-CBC (OWASP's PBKDF2 figure), and ``cryptography`` (51) exposes no
builder for PKCS#8 — ``PrivateFormat.PKCS8.encryption_builder()`` raises — and
no writer for scrypt in PKCS#8 either. Its PKCS#12 builder does take the KDF
rounds and PBES2-SHA256-AES256, and a PKCS#12 ``pkcs8ShroudedKeyBag`` *is* a
PKCS#8 ``EncryptedPrivateKeyInfo`` (RFC 7292 §4.2.2). So ``cryptography``
does all the cryptography, and ``asn1crypto`` only lifts that one structure
out of the PFX; the result is an ordinary ``ENCRYPTED PRIVATE KEY`` PEM that
``cryptography`` and OpenSSL read.

How a key is encrypted is recorded in the key set (``KeyRecord.encryption``)
rather than guessed: ``ENCRYPTION_NONE``, ``ENCRYPTION_CURRENT``, or absent
(written before it was recorded: plaintext or 2,048 iterations), so the next
write of the store knows which keys to re-encrypt.
"""

from __future__ import annotations

from typing import Any

from asn1crypto import pem as asn1_pem
from asn1crypto import pkcs12 as asn1_pkcs12
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

__all__ = [
    "ENCRYPTION_CURRENT",
    "ENCRYPTION_NONE",
    "KDF_ITERATIONS",
    "encrypt_private_key",
    "encryption_for",
    "load_private_key",
]

KDF_ITERATIONS = 600_000
ENCRYPTION_NONE = "none"
ENCRYPTION_CURRENT = f"pbes2-pbkdf2-sha256-{KDF_ITERATIONS}-aes256cbc"


def encryption_for(passphrase: bytes | None) -> str:
    """What ``encrypt_private_key`` writes for this passphrase (recorded in the manifest)."""
    return ENCRYPTION_CURRENT if passphrase else ENCRYPTION_NONE


def encrypt_private_key(key: Any, passphrase: bytes | None) -> bytes:
    """PKCS#8 PEM; PBES2 / PBKDF2-HMAC-SHA256 ``KDF_ITERATIONS`` / AES-256-CBC with a passphrase."""
    if not passphrase:
        return key.private_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(KDF_ITERATIONS)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .build(passphrase)
    )
    pfx = asn1_pkcs12.Pfx.load(pkcs12.serialize_key_and_certificates(None, key, None, None, encryption))
    shrouded = [
        bag["bag_value"]
        for content in pfx.authenticated_safe
        for bag in asn1_pkcs12.SafeContents.load(content["content"].native)
        if bag["bag_id"].native == "pkcs8_shrouded_key_bag"
    ]
    if len(shrouded) != 1:  # cryptography changed its PKCS#12 layout: never write a key we cannot read
        raise RuntimeError("unexpected PKCS#12 layout from cryptography")
    der = shrouded[0].untag().dump()
    return asn1_pem.armor("ENCRYPTED PRIVATE KEY", der)  # type: ignore[no-any-return]


def load_private_key(pem: bytes, passphrase: bytes | None) -> Any:
    """The private key of a PEM; ValueError or TypeError when the passphrase does not open it.

    A passphrase given for a plaintext key, or none for an encrypted one, is
    refused too (``cryptography`` raises TypeError): both mean this host's
    ``AUTHSVC_KEY_PASSPHRASE`` is not the one the key was written with.
    """
    return serialization.load_pem_private_key(pem, password=passphrase)
