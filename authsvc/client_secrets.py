"""Client secrets: generated ones are 256-bit and stored as salted SHA-256
(fast and safe for high-entropy secrets); operator-chosen ones get argon2id.

An unknown or public client id is checked against a dummy SHA-256 hash: it
costs what a known generated-secret id costs (never a password hash, which an
unauthenticated caller could otherwise make us run at will), and its timing
tells nothing about which ids exist.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from authsvc.passwords import PasswordHasher

__all__ = ["generate_secret", "hash_generated", "is_costly", "verify_secret"]

_SHA256 = "sha256"


def generate_secret() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def hash_generated(secret: str) -> str:
    salt = secrets.token_hex(16)
    digest = hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()
    return f"{_SHA256}${salt}${digest}"


_DUMMY = hash_generated(generate_secret())


def is_costly(stored: str | None) -> bool:
    """Whether checking against ``stored`` runs a password hash (an operator-chosen secret)."""
    return stored is not None and not stored.startswith(_SHA256 + "$")


def _check_generated(secret: str, stored: str) -> bool:
    _, salt, digest = stored.split("$", 2)
    computed = hashlib.sha256(bytes.fromhex(salt) + secret.encode("utf-8", "surrogatepass")).hexdigest()
    return hmac.compare_digest(computed, digest)


async def verify_secret(secret: str, stored: str | None, hasher: PasswordHasher) -> bool:
    """Constant-time for SHA-256 hashes (and the dummy); argon2's own verify for chosen secrets."""
    if stored is None:
        _check_generated(secret, _DUMMY)  # the same work as a known id, for no answer
        return False
    if not is_costly(stored):
        return _check_generated(secret, stored)
    valid, _ = await hasher.verify(secret, stored)
    return valid
