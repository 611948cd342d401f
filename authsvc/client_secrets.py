"""Client secrets: generated ones are 256-bit and stored as salted SHA-256
(fast and safe for high-entropy secrets); operator-chosen ones get argon2id."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from authsvc.passwords import PasswordHasher

__all__ = ["generate_secret", "hash_generated", "verify_secret"]

_SHA256 = "sha256"


def generate_secret() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def hash_generated(secret: str) -> str:
    salt = secrets.token_hex(16)
    digest = hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()
    return f"{_SHA256}${salt}${digest}"


async def verify_secret(secret: str, stored: str | None, hasher: PasswordHasher) -> bool:
    """Constant-time for SHA-256 hashes; argon2's own verify for chosen secrets."""
    if not stored:
        await hasher.verify(secret, None)  # same cost as a real check
        return False
    if stored.startswith(_SHA256 + "$"):
        _, salt, digest = stored.split("$", 2)
        computed = hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()
        return hmac.compare_digest(computed, digest)
    valid, _ = await hasher.verify(secret, stored)
    return valid
