"""The keys a private_key_jwt client publishes at its ``jwks_uri`` (``clients add --jwks-uri``).

They are fetched and cached by the verifier's own cache,
:class:`authsvc.verifier.keyset.KeyCache`, so its written policy holds here too:
``Cache-Control: max-age`` (clamped to ``[MIN_CACHE, MAX_CACHE]``), ETag
revalidation, one re-fetch per ``UNKNOWN_KID_COOLDOWN`` for a ``kid`` not in
the set (the client rotated its key), stale keys for up to ``STALE_IF_ERROR``
past their lifetime while the URI fails, and a capped back-off so an outage
never becomes a fetch loop. Concurrent requests for one URI share one fetch.

What a fetch brings goes through the registration rules of
``authsvc.client_keys`` (RSA of 2048 bits or more, EC on P-256 only, no
private members, an alg of ours pinned per key): an unusable key is skipped,
so an assertion signed with it fails like one signed with an unknown key.

One cache per URI, built on first use and kept for the life of the process
(the URIs are the operator's, a handful). A fetch that fails in any way means
no key, which the caller turns into ``invalid_client``: never a server error.
"""

from __future__ import annotations

import asyncio
from typing import Final

import httpx
from joserfc.jwk import ECKey, OKPKey, RSAKey

from authsvc.client_keys import usable_keys
from authsvc.clock import Clock
from authsvc.keys.ring import LoadedKey
from authsvc.verifier.keyset import MAX_KID_LENGTH, KeyCache, VerificationKey, jwks_entries
from authsvc.verifier.verifier import fetch_jwks

__all__ = [
    "FETCH_TIMEOUT",
    "MAX_CACHE",
    "MIN_CACHE",
    "STALE_IF_ERROR",
    "UNKNOWN_KID_COOLDOWN",
    "ClientKeySets",
    "parse_client_jwks",
]

#: Seconds a fetch may take: a token request waits for it.
FETCH_TIMEOUT: Final = 5.0
#: Bounds on a response's lifetime (``max-age``): a key the client withdraws stops working within MAX_CACHE.
MIN_CACHE: Final = 5.0
MAX_CACHE: Final = 3600.0
#: How long a key set may be used past its lifetime while the URI fails.
STALE_IF_ERROR: Final = 3600.0
#: An unknown ``kid`` re-fetches at most this often (and so at most this often for an attacker too).
UNKNOWN_KID_COOLDOWN: Final = 30.0
_FETCHES_PER_ASSERTION: Final = 2  # one for an expired set, one for an unknown kid: never a loop


def parse_client_jwks(body: bytes) -> dict[str, VerificationKey]:
    """A fetched JWKS's usable keys by kid, under the rules of registered keys.

    A key without ``kid`` is named by its RFC 7638 thumbprint, and the only key of
    a one-key set is also found under ``""``: the kid ``check_token`` asks for when
    an assertion's header names none (RFC 7523 does not require one).
    """
    keys = {
        kid: VerificationKey(kid=kid, algs=frozenset({loaded.alg}), key=loaded.key)
        for kid, loaded in usable_keys(jwks_entries(body)).items()
        if len(kid) <= MAX_KID_LENGTH
    }
    if len(keys) == 1:
        keys[""] = next(iter(keys.values()))
    return keys


class _UriCache:
    """One URI's key cache and the lock its fetches take (per event loop)."""

    def __init__(self, keys: KeyCache) -> None:
        self.keys = keys
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop = asyncio.Lock(), loop
        return self._lock


class ClientKeySets:
    """Clients' published key sets, one cache per URI, fetched when the cache says so.

    ``transport`` replaces the network (tests); each fetch uses a short-lived
    HTTP client, as fetches are rare and this object has no shutdown hook.
    """

    def __init__(self, clock: Clock, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._clock = clock
        self._transport = transport
        self._caches: dict[str, _UriCache] = {}

    async def key_for(self, uri: str, kid: str) -> LoadedKey | None:
        """The key named ``kid`` at ``uri`` (``""``: the sole key), fetching if the cache allows."""
        cache = self._caches.get(uri)
        if cache is None:
            cache = self._caches[uri] = _UriCache(
                KeyCache(
                    min_cache=MIN_CACHE,
                    max_cache=MAX_CACHE,
                    stale_if_error=STALE_IF_ERROR,
                    unknown_kid_cooldown=UNKNOWN_KID_COOLDOWN,
                    parse=parse_client_jwks,
                )
            )
        for _ in range(_FETCHES_PER_ASSERTION):
            generation = cache.keys.generation
            if not cache.keys.needs_fetch(kid, self._clock.now()):
                break
            await self._fetch(uri, cache, generation)
        if not cache.keys.is_usable(self._clock.now()):
            return None
        found = cache.keys.get(kid)
        if found is None or not isinstance(found.key, RSAKey | ECKey | OKPKey):
            return None
        (alg,) = found.algs  # the one alg usable_keys pinned
        return LoadedKey(found.kid, alg, found.key)

    async def _fetch(self, uri: str, cache: _UriCache, generation: int) -> None:
        async with cache.lock():
            if cache.keys.generation != generation:
                return  # another request fetched meanwhile: share its result
            try:
                async with httpx.AsyncClient(timeout=FETCH_TIMEOUT, transport=self._transport) as http:
                    status, headers, body = await fetch_jwks(http, uri, cache.keys.request_headers())
            except Exception as exc:  # any transport trouble is a failed fetch, kept in the cache state
                cache.keys.record_failure(self._clock.now(), f"{uri}: {type(exc).__name__}")
                return
            cache.keys.record_response(status, headers, body, self._clock.now())
