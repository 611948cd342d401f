"""The JWKS side of verification: which published keys count, and for how long.

Everything here is pure (no I/O, no clock of its own): :class:`KeyCache` is a
small state machine fed with fetch results and the current time, so the async
and sync verifiers share it and tests drive it with a fake clock.

Policy, after panva/jose's remote JWK set and RFC 9111:

- lifetime = ``max-age`` - ``Age``, clamped to ``[min_cache, max_cache]``;
  no ``Cache-Control`` (or no ``max-age``) → 300 s; ``no-store``/``no-cache`` → ``min_cache``;
- an ``ETag`` is revalidated with ``If-None-Match``; a 304 keeps the keys and
  renews their lifetime;
- an unknown ``kid`` may trigger one re-fetch per ``unknown_kid_cooldown``;
- a failed fetch keeps the old keys up to ``stale_if_error`` past their expiry and
  backs off exponentially (capped), so an outage never turns into a fetch loop.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from joserfc.jwk import Key, import_key

from authsvc.jose import MIN_RSA_BITS, algs_for_jwk, rsa_modulus_bits

__all__ = [
    "DEFAULT_LIFETIME",
    "MAX_JWKS_BYTES",
    "MAX_KID_LENGTH",
    "JWKSError",
    "KeyCache",
    "VerificationKey",
    "cache_lifetime",
    "jwks_entries",
    "parse_jwks",
]

logger = logging.getLogger("authsvc.verifier")

#: Lifetime of a JWKS response that carries no ``Cache-Control: max-age``.
DEFAULT_LIFETIME: Final = 300.0
#: A JWKS larger than this is refused (a handful of keys is a few KiB).
MAX_JWKS_BYTES: Final = 1024 * 1024
#: Longer ``kid`` values are not ours (ours are 43-character thumbprints).
MAX_KID_LENGTH: Final = 256

# Only these members are imported, so a JWKS that leaks private parts still
# yields public keys only.
_PUBLIC_MEMBERS: Final[dict[str, tuple[str, ...]]] = {
    "RSA": ("n", "e"),
    "EC": ("crv", "x", "y"),
    "OKP": ("crv", "x"),
}


class JWKSError(Exception):
    """A JWKS response could not be used (internal: becomes a fetch failure)."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key from the JWKS and the algorithms it may verify."""

    kid: str
    algs: frozenset[str]
    key: Key


def _import_entry(entry: object) -> VerificationKey | None:
    """One JWKS member as a verification key, or None if it is not one we may use."""
    if not isinstance(entry, dict):
        return None
    kid = entry.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
        return None
    if entry.get("use", "sig") != "sig":
        return None
    key_ops = entry.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    algs = algs_for_jwk(entry)  # None for kty "oct" and anything else symmetric or unknown
    if algs is None:
        return None
    kty: str = entry["kty"]
    members = {"kty": kty}
    for name in _PUBLIC_MEMBERS[kty]:
        value = entry.get(name)
        if not isinstance(value, str):
            return None
        members[name] = value
    try:
        if kty == "RSA" and rsa_modulus_bits(members["n"]) < MIN_RSA_BITS:
            return None  # checked before import: joserfc would warn, not refuse
        key = import_key(members, kty)  # type: ignore[call-overload]
    except Exception as exc:  # joserfc/cryptography raise several types for bad material
        logger.debug("ignoring JWKS key %r: %s", kid, type(exc).__name__)
        return None
    return VerificationKey(kid=kid, algs=algs, key=key)


def jwks_entries(body: bytes) -> list[Any]:
    """The ``keys`` list of a JWKS document (bounded in size), or JWKSError."""
    if len(body) > MAX_JWKS_BYTES:
        raise JWKSError("JWKS too large")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise JWKSError("JWKS is not JSON") from exc
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JWKSError("JWKS has no keys list")
    entries: list[Any] = document["keys"]
    return entries


def parse_jwks(body: bytes) -> dict[str, VerificationKey]:
    """The usable signature keys of a JWKS document, by ``kid``.

    Entries that are not signature keys, are symmetric, lack a ``kid`` or do not
    import are skipped; the first of two entries with one ``kid`` wins. A body
    that is not a JSON object with a ``keys`` list raises :class:`JWKSError`.
    """
    keys: dict[str, VerificationKey] = {}
    for entry in jwks_entries(body):
        key = _import_entry(entry)
        if key is not None:
            keys.setdefault(key.kid, key)
    return keys


def _non_negative_int(value: str) -> int | None:
    value = value.strip().strip('"')
    return int(value) if value.isascii() and value.isdigit() else None


def cache_lifetime(
    cache_control: str | None,
    age: str | None,
    *,
    min_cache: float,
    max_cache: float | None,
) -> float:
    """Seconds a JWKS response may be used, from its ``Cache-Control`` and ``Age``."""
    lifetime = DEFAULT_LIFETIME
    if cache_control:
        directives: dict[str, str] = {}
        for part in cache_control.split(","):
            name, _, value = part.partition("=")
            directives.setdefault(name.strip().lower(), value)
        if "no-store" in directives or "no-cache" in directives:
            lifetime = min_cache
        elif "max-age" in directives:
            max_age = _non_negative_int(directives["max-age"])
            if max_age is not None:
                age_seconds = _non_negative_int(age) if age else None
                lifetime = max_age - (age_seconds or 0)
    lifetime = max(float(lifetime), min_cache)
    if max_cache is not None:
        lifetime = min(lifetime, max_cache)
    return lifetime


class KeyCache:
    """The cached key set and the rules for when to fetch it again.

    ``parse`` reads a 200 body into keys (:func:`parse_jwks` unless told: the
    server's cache of a client's ``jwks_uri`` applies its registration rules);
    it raises :class:`JWKSError` for a body that is not a key set.

    Callers read ``generation`` before deciding to fetch and hand it to their
    fetch layer: a fetch layer holding the lock skips the request if the
    generation moved meanwhile, which is what makes concurrent callers share
    one fetch (success or failure alike).
    """

    def __init__(
        self,
        *,
        min_cache: float,
        max_cache: float | None,
        stale_if_error: float,
        unknown_kid_cooldown: float,
        parse: Callable[[bytes], Mapping[str, VerificationKey]] = parse_jwks,
    ) -> None:
        self._parse = parse
        self._min_cache = min_cache
        self._max_cache = max_cache
        self._stale_if_error = stale_if_error
        self._cooldown = unknown_kid_cooldown
        self._max_backoff = max(unknown_kid_cooldown, min_cache, 1.0)
        self._keys: Mapping[str, VerificationKey] = {}
        self._loaded = False
        self._expires_at = -math.inf
        self._etag: str | None = None
        self._last_attempt_at = -math.inf
        self._retry_at = -math.inf
        self._failures = 0
        #: Completed fetch attempts; moves on every success and every failure.
        self.generation = 0
        #: Until when the keys are fresh (-inf while none are loaded): a float to compare
        #: with, for the per-request path of tokens verified before.
        self.fresh_until = -math.inf

    @property
    def keys(self) -> Mapping[str, VerificationKey]:
        """The cached keys by ``kid``, fresh or stale (replaced, never mutated, by a fetch)."""
        return self._keys

    def get(self, kid: str) -> VerificationKey | None:
        """The cached key with this ``kid``, fresh or stale."""
        return self._keys.get(kid)

    def is_fresh(self, now: float) -> bool:
        """Keys are loaded and within their HTTP lifetime."""
        return self._loaded and now < self._expires_at

    def is_usable(self, now: float) -> bool:
        """Keys are loaded and at most ``stale_if_error`` past their lifetime."""
        return self._loaded and now < self._expires_at + self._stale_if_error

    def serves_without_fetch(self, now: float) -> bool:
        """Keys are usable and no fetch is due: fresh, or stale while backing off after a failure.

        What a token verified earlier may rely on; otherwise the caller goes the
        long way (fetch if due, then check), which is how a removed ``kid`` is learned.
        """
        if now < self._expires_at:
            return self._loaded
        return self._loaded and now < self._retry_at and now < self._expires_at + self._stale_if_error

    def should_refresh(self, now: float) -> bool:
        """Cold or expired, and not backing off after a failure."""
        return not self.is_fresh(now) and now >= self._retry_at

    def may_refetch_for(self, kid: str, now: float) -> bool:
        """An unknown ``kid`` may trigger a fetch once per cooldown (and not while backing off)."""
        return (
            kid not in self._keys and now >= self._last_attempt_at + self._cooldown and now >= self._retry_at
        )

    def needs_fetch(self, kid: str, now: float) -> bool:
        """Whether a token with this ``kid`` justifies a fetch now."""
        return self.should_refresh(now) or self.may_refetch_for(kid, now)

    def request_headers(self) -> dict[str, str]:
        """Headers for the next fetch: a conditional request once we hold an ETag."""
        headers = {"Accept": "application/jwk-set+json, application/json"}
        if self._etag is not None and self._loaded:
            headers["If-None-Match"] = self._etag
        return headers

    def record_response(self, status: int, headers: Mapping[str, str], body: bytes, now: float) -> None:
        """Apply a fetch result: 200 replaces the keys, 304 renews them, anything else fails."""
        if status == 304 and self._loaded and self._etag is not None:
            self._etag = headers.get("etag") or self._etag
            self._succeed(headers, now)
            return
        if status != 200:
            self.record_failure(now, f"HTTP {status}")
            return
        try:
            keys = self._parse(body)
        except JWKSError as exc:
            self.record_failure(now, str(exc))
            return
        self._keys = keys
        self._loaded = True
        self._etag = headers.get("etag") or None
        self._succeed(headers, now)

    def _succeed(self, headers: Mapping[str, str], now: float) -> None:
        lifetime = cache_lifetime(
            headers.get("cache-control"),
            headers.get("age"),
            min_cache=self._min_cache,
            max_cache=self._max_cache,
        )
        self._expires_at = now + lifetime
        self.fresh_until = self._expires_at if self._loaded else -math.inf
        self._last_attempt_at = now
        self._retry_at = -math.inf
        self._failures = 0
        self.generation += 1

    def record_failure(self, now: float, why: str) -> None:
        """A fetch failed: keep what we have and back off before trying again."""
        self._failures += 1
        backoff = min(max(self._min_cache, 1.0) * 2 ** min(self._failures - 1, 30), self._max_backoff)
        self._last_attempt_at = now
        self._retry_at = now + backoff
        self.generation += 1
        if self.is_usable(now):
            logger.warning("JWKS fetch failed (%s); using cached keys, retry in %.0f s", why, backoff)
        else:
            logger.warning("JWKS fetch failed (%s); no usable keys, retry in %.0f s", why, backoff)
