"""Offline access-token verification for resource servers: async and sync.

Both classes are thin fetch layers over :class:`~authsvc.verifier.core.VerifierCore`.
A fetch happens under a lock and only if no other caller completed one since
this caller decided to fetch (the cache's ``generation``), so N concurrent
callers on a cold or expired cache share one request, and a failure is shared
too instead of being retried N times.

DPoP (RFC 9449): ``verify(token, dpop=DpopRequest(...))`` for a request made with
the DPoP scheme; the core checks the binding and the proof, then the verifier
records the proof's ``jti`` in its replay cache (``dpop_replay``, in memory by
default). The sync verifier runs the cache's ``first_use`` without an event loop,
so its cache must answer without suspending: :class:`InMemoryReplayCache`, or
:class:`RedisReplayCache` over a blocking ``redis.Redis``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Collection, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

import httpx

from authsvc.verifier.core import FETCH_TIMEOUT, Clock, VerifierCore, scope_list
from authsvc.verifier.dpop import DPOP_SCHEME, DpopRequest
from authsvc.verifier.errors import InvalidToken
from authsvc.verifier.keyset import MAX_JWKS_BYTES
from authsvc.verifier.nonces import NonceSource
from authsvc.verifier.replay import ReplayCache
from authsvc.verifier.verified import DEFAULT_MAX_SIZE

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from authsvc.dpop import DpopProof

__all__ = ["SyncVerifier", "Verifier", "fetch_jwks"]

# One fetch for an expired cache, one for an unknown kid: never a loop.
_MAX_FETCHES_PER_TOKEN: Final = 2


class _TooLarge(Exception):
    """The JWKS body exceeded MAX_JWKS_BYTES."""


async def fetch_jwks(
    http: httpx.AsyncClient, url: str, headers: Mapping[str, str]
) -> tuple[int, httpx.Headers, bytes]:
    """GET a JWKS: status, headers, body. No redirects; a body over MAX_JWKS_BYTES raises."""
    async with http.stream("GET", url, headers=headers, follow_redirects=False) as response:
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_JWKS_BYTES:
                raise _TooLarge
        return response.status_code, response.headers, bytes(body)


class Verifier:
    """Verify authsvc access tokens offline against the issuer's JWKS (asyncio).

    ``verify`` returns the claims or raises
    :class:`~authsvc.verifier.errors.InvalidToken`; ``require`` builds a FastAPI
    dependency. Pass ``http`` to reuse an ``httpx.AsyncClient`` (it is then
    yours to close); otherwise one is made on first use and closed by ``aclose``.

    DPoP: ``dpop_replay`` remembers accepted proofs (an in-memory cache by
    default; :class:`~authsvc.verifier.RedisReplayCache` to share it between
    instances), ``dpop_nonces`` makes proofs carry a server nonce, and
    ``dpop_leeway`` is how far a proof's ``iat`` may be from now, in seconds.

    ``token_cache_size``: how many verified tokens to remember (0: none), so a
    token seen again skips its signature check and its parsing; the time
    claims, the key set's freshness, DPoP and scopes are still checked on
    every call (:mod:`authsvc.verifier.verified`).
    """

    def __init__(
        self,
        issuer: str,
        audience: str | Collection[str],
        *,
        jwks_url: str | None = None,
        leeway: float = 60,
        unknown_kid_cooldown: float = 30,
        min_cache: float = 1,
        max_cache: float | None = None,
        stale_if_error: float = 86400,
        http: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        dpop_replay: ReplayCache | None = None,
        dpop_nonces: NonceSource | None = None,
        dpop_leeway: float = 60,
        token_cache_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        self._core = VerifierCore(
            issuer,
            audience,
            jwks_url=jwks_url,
            leeway=leeway,
            unknown_kid_cooldown=unknown_kid_cooldown,
            min_cache=min_cache,
            max_cache=max_cache,
            stale_if_error=stale_if_error,
            clock=clock,
            dpop_replay=dpop_replay,
            dpop_nonces=dpop_nonces,
            dpop_leeway=dpop_leeway,
            token_cache_size=token_cache_size,
        )
        self._http = http
        self._owns_http = http is None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    @property
    def issuer(self) -> str:
        """The exact ``iss`` accepted."""
        return self._core.issuer

    @property
    def audiences(self) -> frozenset[str]:
        """The ``aud`` values accepted (a token needs one of them)."""
        return self._core.audiences

    @property
    def jwks_url(self) -> str:
        """Where the keys are fetched from."""
        return self._core.jwks_url

    @property
    def dpop_nonces(self) -> NonceSource | None:
        """The server nonces DPoP proofs must carry, if this verifier demands them."""
        return self._core.nonces

    @property
    def cached_tokens(self) -> int:
        """How many verified tokens are remembered now (at most ``token_cache_size``)."""
        return len(self._core.verified)

    async def verify(
        self, token: str, *, scopes: str | Collection[str] = (), dpop: DpopRequest | None = None
    ) -> dict[str, Any]:
        """The token's claims if it is a valid access token for us, else InvalidToken.

        ``dpop``: the request's proof, method and URL when it came with the DPoP
        scheme; a DPoP-bound token (``cnf.jkt``) is refused without one.
        """
        required = scope_list(scopes) if scopes else ()
        try:
            seen = self._core.cached(token, required, dpop)
            if seen is None:
                parsed = self._core.parse(token)
                for _ in range(_MAX_FETCHES_PER_TOKEN):
                    generation = self._core.cache.generation
                    if not self._core.needs_fetch(parsed):
                        break
                    await self._fetch(generation)
                # A refresh that kept the token's key keeps the token (no re-verification storm).
                seen = self._core.cached(token, required, dpop) or self._core.finish(
                    token, parsed, required, dpop
                )
            claims, proof = seen
            if proof is not None:
                await self._remember(proof)
        except InvalidToken as exc:
            if dpop is not None:
                exc.scheme = DPOP_SCHEME
            raise
        return claims

    async def _remember(self, proof: DpopProof) -> None:
        try:
            first = await self._core.replay.first_use(*self._core.replay_entry(proof))
        except Exception as exc:  # the cache is down: never accept an unchecked proof
            raise self._core.replay_unavailable(exc) from exc
        self._core.replay_outcome(first)

    def require(
        self, scopes: str | Collection[str] = (), *, realm: str = "authsvc", public_url: str | None = None
    ) -> Callable[..., Awaitable[dict[str, Any]]]:
        """A FastAPI dependency: the claims of a valid Bearer or DPoP token holding ``scopes``.

        Errors follow RFC 6750 and RFC 9449. Call
        :func:`authsvc.verifier.fastapi.install_error_handler` on the app to get the
        ``{"error", "error_description"}`` body; without it FastAPI nests that
        object under ``"detail"`` (status and ``WWW-Authenticate`` are the same).
        ``public_url`` (``https://api.example.com[/prefix]``): how clients reach
        the app, for the DPoP ``htu`` check; by default the request's own URL.
        """
        from authsvc.verifier.fastapi import bearer_dependency  # lazily: FastAPI is an optional extra

        return bearer_dependency(self, scope_list(scopes), realm=realm, public_url=public_url)

    def _loop_lock(self) -> asyncio.Lock:
        # asyncio.Lock binds to one loop; a verifier reused across loops (tests,
        # asyncio.run per job) gets a fresh lock per loop.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def _fetch(self, generation: int) -> None:
        async with self._loop_lock():
            if self._core.cache.generation != generation:
                return  # someone fetched while we waited: share their result
            try:
                status, headers, body = await self._get()
            except Exception as exc:  # any transport trouble is a failed fetch, kept in the cache state
                self._core.record_failure(type(exc).__name__)
                return
            self._core.record_response(status, headers, body)

    async def _get(self) -> tuple[int, httpx.Headers, bytes]:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=FETCH_TIMEOUT)
        return await fetch_jwks(self._http, self._core.jwks_url, self._core.request_headers())

    async def aclose(self) -> None:
        """Close the HTTP client if this verifier created it."""
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class SyncVerifier:
    """The blocking twin of :class:`Verifier` for WSGI apps, workers and scripts.

    Same arguments (``http`` is an ``httpx.Client``), same cache rules and
    checks; thread-safe: concurrent threads share one fetch under a lock.
    """

    def __init__(
        self,
        issuer: str,
        audience: str | Collection[str],
        *,
        jwks_url: str | None = None,
        leeway: float = 60,
        unknown_kid_cooldown: float = 30,
        min_cache: float = 1,
        max_cache: float | None = None,
        stale_if_error: float = 86400,
        http: httpx.Client | None = None,
        clock: Clock | None = None,
        dpop_replay: ReplayCache | None = None,
        dpop_nonces: NonceSource | None = None,
        dpop_leeway: float = 60,
        token_cache_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        self._core = VerifierCore(
            issuer,
            audience,
            jwks_url=jwks_url,
            leeway=leeway,
            unknown_kid_cooldown=unknown_kid_cooldown,
            min_cache=min_cache,
            max_cache=max_cache,
            stale_if_error=stale_if_error,
            clock=clock,
            dpop_replay=dpop_replay,
            dpop_nonces=dpop_nonces,
            dpop_leeway=dpop_leeway,
            token_cache_size=token_cache_size,
        )
        self._http = http
        self._owns_http = http is None
        self._lock = threading.Lock()

    @property
    def issuer(self) -> str:
        """The exact ``iss`` accepted."""
        return self._core.issuer

    @property
    def audiences(self) -> frozenset[str]:
        """The ``aud`` values accepted (a token needs one of them)."""
        return self._core.audiences

    @property
    def jwks_url(self) -> str:
        """Where the keys are fetched from."""
        return self._core.jwks_url

    @property
    def dpop_nonces(self) -> NonceSource | None:
        """The server nonces DPoP proofs must carry, if this verifier demands them."""
        return self._core.nonces

    @property
    def cached_tokens(self) -> int:
        """How many verified tokens are remembered now (at most ``token_cache_size``)."""
        return len(self._core.verified)

    def verify(
        self, token: str, *, scopes: str | Collection[str] = (), dpop: DpopRequest | None = None
    ) -> dict[str, Any]:
        """The token's claims if it is a valid access token for us, else InvalidToken.

        ``dpop``: as for :meth:`Verifier.verify`.
        """
        required = scope_list(scopes) if scopes else ()
        try:
            seen = self._core.cached(token, required, dpop)
            if seen is None:
                parsed = self._core.parse(token)
                for _ in range(_MAX_FETCHES_PER_TOKEN):
                    generation = self._core.cache.generation
                    if not self._core.needs_fetch(parsed):
                        break
                    self._fetch(generation)
                # A refresh that kept the token's key keeps the token (no re-verification storm).
                seen = self._core.cached(token, required, dpop) or self._core.finish(
                    token, parsed, required, dpop
                )
            claims, proof = seen
            if proof is not None:
                self._remember(proof)
        except InvalidToken as exc:
            if dpop is not None:
                exc.scheme = DPOP_SCHEME
            raise
        return claims

    def _remember(self, proof: DpopProof) -> None:
        # The cache's coroutine is driven by hand: one step must finish it.
        step = self._core.replay.first_use(*self._core.replay_entry(proof))
        try:
            step.send(None)
        except StopIteration as done:
            first = done.value
        except Exception as exc:  # the cache is down: never accept an unchecked proof
            raise self._core.replay_unavailable(exc) from exc
        else:
            step.close()
            raise TypeError(
                "SyncVerifier needs a replay cache that answers without awaiting: "
                "InMemoryReplayCache, or RedisReplayCache over a blocking redis.Redis"
            )
        self._core.replay_outcome(first)

    def _fetch(self, generation: int) -> None:
        with self._lock:
            if self._core.cache.generation != generation:
                return
            try:
                status, headers, body = self._get()
            except Exception as exc:  # any transport trouble is a failed fetch, kept in the cache state
                self._core.record_failure(type(exc).__name__)
                return
            self._core.record_response(status, headers, body)

    def _get(self) -> tuple[int, httpx.Headers, bytes]:
        if self._http is None:
            self._http = httpx.Client(timeout=FETCH_TIMEOUT)
        request_headers = self._core.request_headers()
        with self._http.stream(
            "GET", self._core.jwks_url, headers=request_headers, follow_redirects=False
        ) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise _TooLarge
            return response.status_code, response.headers, bytes(body)

    def close(self) -> None:
        """Close the HTTP client if this verifier created it."""
        with self._lock:
            if self._owns_http and self._http is not None:
                self._http.close()
                self._http = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
