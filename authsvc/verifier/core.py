"""What the async and sync verifiers share: settings, the key cache, the checks.

:class:`VerifierCore` does no I/O. A verifier asks it whether a token justifies
a JWKS fetch, performs the fetch its own way (``await`` or blocking, each under
its own lock), hands the result back, and lets the core finish the checks. So
the caching rules and the token rules exist once. DPoP likewise: the core
decides whether a proof binds the token (:mod:`authsvc.verifier.dpop`) and what
the replay cache is asked; the verifier asks it its own way.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from authsvc.dpop import DpopProof, replay_key
from authsvc.verifier.dpop import DPOP_SCHEME, DpopRequest, check_binding, replay_expiry
from authsvc.verifier.errors import InvalidToken
from authsvc.verifier.keyset import KeyCache
from authsvc.verifier.nonces import NonceSource
from authsvc.verifier.replay import InMemoryReplayCache, ReplayCache
from authsvc.verifier.token import ParsedToken, check_claims, check_scopes, check_signature, parse_token
from authsvc.verifier.verified import DEFAULT_MAX_SIZE, VerifiedToken, VerifiedTokens, copy_claims

__all__ = ["FETCH_TIMEOUT", "Clock", "VerifierCore", "scope_list"]

logger = logging.getLogger("authsvc.verifier")

#: A zero-argument callable returning epoch seconds (``time.time`` by default).
Clock = Callable[[], float]
#: Seconds a JWKS fetch may take when the verifier builds its own HTTP client.
FETCH_TIMEOUT: Final = 5.0


def _non_negative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0 or math.isinf(value):
        raise ValueError(f"{name} must be a finite number >= 0")
    return float(value)


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _audiences(audience: str | Collection[str]) -> frozenset[str]:
    values = [audience] if isinstance(audience, str) else list(audience)
    if not values or not all(isinstance(a, str) and a for a in values):
        raise ValueError("audience must be a non-empty string or a non-empty list of them")
    return frozenset(values)


def scope_list(scopes: str | Collection[str]) -> tuple[str, ...]:
    """Required scopes as a tuple; a string is read as a space-separated list."""
    values = scopes.split(" ") if isinstance(scopes, str) else list(scopes)
    if not all(isinstance(s, str) for s in values):
        raise TypeError("scopes must be strings")
    return tuple(s for s in values if s)


class VerifierCore:
    """Validated settings plus the JWKS cache; the pure half of a verifier."""

    def __init__(
        self,
        issuer: str,
        audience: str | Collection[str],
        *,
        jwks_url: str | None,
        leeway: float,
        unknown_kid_cooldown: float,
        min_cache: float,
        max_cache: float | None,
        stale_if_error: float,
        clock: Clock | None,
        dpop_replay: ReplayCache | None = None,
        dpop_nonces: NonceSource | None = None,
        dpop_leeway: float = 60,
        token_cache_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        if not isinstance(issuer, str) or not issuer:
            raise ValueError("issuer must be a non-empty string")
        self.issuer = issuer
        self.audiences = _audiences(audience)
        self.jwks_url = jwks_url if jwks_url is not None else issuer.rstrip("/") + "/.well-known/jwks.json"
        if not self.jwks_url.startswith(("https://", "http://")):
            raise ValueError("jwks_url must be an http(s) URL")
        if self.jwks_url.startswith("http://") and not _is_loopback(self.jwks_url):
            logger.warning("JWKS URL %s is plain http: keys can be forged in transit", self.jwks_url)
        self.leeway = _non_negative("leeway", leeway)
        min_cache = _non_negative("min_cache", min_cache)
        if max_cache is not None and _non_negative("max_cache", max_cache) < min_cache:
            raise ValueError("max_cache must be >= min_cache")
        self.cache = KeyCache(
            min_cache=min_cache,
            max_cache=max_cache,
            stale_if_error=_non_negative("stale_if_error", stale_if_error),
            unknown_kid_cooldown=_non_negative("unknown_kid_cooldown", unknown_kid_cooldown),
        )
        self._clock: Clock = clock if clock is not None else time.time
        if dpop_replay is not None and not isinstance(dpop_replay, ReplayCache):
            raise TypeError("dpop_replay must be a ReplayCache (an async first_use method)")
        if dpop_nonces is not None and not isinstance(dpop_nonces, NonceSource):
            raise TypeError("dpop_nonces must be a NonceSource (current and valid methods)")
        self.replay: ReplayCache = (
            dpop_replay if dpop_replay is not None else InMemoryReplayCache(clock=self._clock)
        )
        self.nonces = dpop_nonces
        self.dpop_leeway = _non_negative("dpop_leeway", dpop_leeway)
        #: Tokens verified before (see :mod:`authsvc.verifier.verified`).
        self.verified = VerifiedTokens(token_cache_size)

    def now(self) -> float:
        """The injected clock's time."""
        return float(self._clock())

    def parse(self, token: object) -> ParsedToken:
        """Parse the token and apply the header policy; only ever raises InvalidToken."""
        try:
            return parse_token(token)
        except InvalidToken:
            raise
        except Exception as exc:  # a hostile token must never escape as another error
            raise _unexpected(exc) from exc

    def needs_fetch(self, token: ParsedToken) -> bool:
        """Whether this token justifies a JWKS fetch now (cold, expired, or unknown kid)."""
        return self.cache.needs_fetch(token.kid, self.now())

    def request_headers(self) -> dict[str, str]:
        """Headers for the next JWKS request."""
        return self.cache.request_headers()

    def record_response(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        """Feed an HTTP answer from the JWKS endpoint to the cache.

        A key set that lost a ``kid`` (or holds another key under it) drops the
        tokens verified with it from the verified-token cache at once.
        """
        before = self.cache.keys
        self.cache.record_response(status, headers, body, self.now())
        after = self.cache.keys
        if after is not before:
            self.verified.drop_kids({kid for kid, key in before.items() if after.get(kid) != key})

    def cached(
        self, token: str, scopes: Collection[str], dpop: DpopRequest | None
    ) -> tuple[dict[str, Any], DpopProof | None] | None:
        """A token verified before: the claims (a copy) and the proof, after the per-call checks.

        None sends the caller the long way: not cached, the key set due for a
        fetch or unusable, or the token outside its time window (the long way
        then gives the reason). What a hit still checks, as :meth:`finish` does:
        the time claims at the injected clock with the leeway, the DPoP binding
        and proof, then the scopes. What it skips: the signature, the JOSE
        parsing, the issuer and audience (fixed per verifier).
        """
        if type(token) is not str:  # exactly str: a subclass could redefine equality
            return None
        entry = self.verified.get(token)
        if entry is None:
            return None
        now = float(self._clock())
        if now >= self.cache.fresh_until and not self.cache.serves_without_fetch(now):
            return None
        if entry.exp <= now - self.leeway:
            self.verified.discard(token)
            return None
        if entry.not_before > now + self.leeway:
            return None
        claims = entry.claims
        proof = None
        if entry.bound or dpop is not None:
            proof = check_binding(token, claims, dpop, now=now, leeway=self.dpop_leeway, nonces=self.nonces)
        if scopes:
            check_scopes(claims, scopes)
        return (copy_claims(claims, True) if entry.nested else claims.copy()), proof

    def record_failure(self, why: str) -> None:
        """Feed a failed fetch (network error, oversized body) to the cache."""
        self.cache.record_failure(self.now(), why)

    def finish(
        self, token: str, parsed: ParsedToken, scopes: Collection[str], dpop: DpopRequest | None
    ) -> tuple[dict[str, Any], DpopProof | None]:
        """Check signature, claims, DPoP binding and scopes: the claims and the proof to remember.

        The binding is checked before the scopes (a bound token sent as Bearer is
        401, whatever its scopes); the replay cache comes last, so a refused
        request never spends a proof. A token that passes its own checks is
        remembered (the binding and the scopes are per call).
        """
        epoch = self.verified.epoch
        claims = self.authenticate(parsed)
        if self.verified.max_size and type(token) is str:
            entry = VerifiedToken(claims, parsed.kid)
            self.verified.put(token, entry, epoch)
            claims = copy_claims(claims, entry.nested)
        proof = check_binding(
            token, claims, dpop, now=self.now(), leeway=self.dpop_leeway, nonces=self.nonces
        )
        check_scopes(claims, scopes)
        return claims, proof

    def replay_entry(self, proof: DpopProof) -> tuple[str, str, float]:
        """What the replay cache is asked for an accepted proof: (owner, jti, expires_at)."""
        owner, jti = replay_key(proof)
        return owner, jti, replay_expiry(proof, self.dpop_leeway)

    @staticmethod
    def replay_outcome(first_use: object) -> None:
        """Refuse a proof the replay cache has seen."""
        if not first_use:
            raise InvalidToken("invalid_dpop_proof", "replayed_dpop_proof", scheme=DPOP_SCHEME)

    @staticmethod
    def replay_unavailable(exc: Exception) -> InvalidToken:
        """The refusal when the replay cache cannot answer: fail closed, retry later."""
        logger.warning("DPoP replay cache failed: %s", type(exc).__name__, exc_info=True)
        return InvalidToken("invalid_token", "replay_cache_unavailable", scheme=DPOP_SCHEME)

    def authenticate(self, token: ParsedToken) -> dict[str, Any]:
        """Check signature and claims with the cached keys."""
        now = self.now()
        if not self.cache.is_usable(now):
            raise InvalidToken("invalid_token", "jwks_unavailable")
        key = self.cache.get(token.kid)
        if key is None:
            raise InvalidToken("invalid_token", "no_matching_key")
        try:
            check_signature(token, key)
            claims = check_claims(
                token.compact.payload,
                issuer=self.issuer,
                audiences=self.audiences,
                leeway=self.leeway,
                now=now,
            )
        except InvalidToken:
            raise
        except Exception as exc:  # as in parse(): never anything but InvalidToken
            raise _unexpected(exc) from exc
        return claims


def _unexpected(exc: Exception) -> InvalidToken:
    logger.warning("token refused after an unexpected %s", type(exc).__name__, exc_info=True)
    return InvalidToken("invalid_token", "malformed")
