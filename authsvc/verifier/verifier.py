"""Offline access-token verification for resource servers: async and sync.

Both classes are thin fetch layers over :class:`~authsvc.verifier.core.VerifierCore`.
A fetch happens under a lock and only if no other caller completed one since
this caller decided to fetch (the cache's ``generation``), so N concurrent
callers on a cold or expired cache share one request, and a failure is shared
too instead of being retried N times.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Collection, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

import httpx

from authsvc.verifier.core import FETCH_TIMEOUT, Clock, VerifierCore, scope_list
from authsvc.verifier.keyset import MAX_JWKS_BYTES

if TYPE_CHECKING:
    from collections.abc import Awaitable

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

    async def verify(self, token: str, *, scopes: str | Collection[str] = ()) -> dict[str, Any]:
        """The token's claims if it is a valid access token for us, else InvalidToken."""
        required = scope_list(scopes)
        parsed = self._core.parse(token)
        for _ in range(_MAX_FETCHES_PER_TOKEN):
            generation = self._core.cache.generation
            if not self._core.needs_fetch(parsed):
                break
            await self._fetch(generation)
        return self._core.finish(parsed, required)

    def require(
        self, scopes: str | Collection[str] = (), *, realm: str = "authsvc"
    ) -> Callable[..., Awaitable[dict[str, Any]]]:
        """A FastAPI dependency: the claims of a valid Bearer token holding ``scopes``.

        Errors follow RFC 6750. Call
        :func:`authsvc.verifier.fastapi.install_error_handler` on the app to get the
        ``{"error", "error_description"}`` body; without it FastAPI nests that
        object under ``"detail"`` (status and ``WWW-Authenticate`` are the same).
        """
        from authsvc.verifier.fastapi import bearer_dependency  # lazily: FastAPI is an optional extra

        return bearer_dependency(self, scope_list(scopes), realm=realm)

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

    def verify(self, token: str, *, scopes: str | Collection[str] = ()) -> dict[str, Any]:
        """The token's claims if it is a valid access token for us, else InvalidToken."""
        required = scope_list(scopes)
        parsed = self._core.parse(token)
        for _ in range(_MAX_FETCHES_PER_TOKEN):
            generation = self._core.cache.generation
            if not self._core.needs_fetch(parsed):
                break
            self._fetch(generation)
        return self._core.finish(parsed, required)

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
