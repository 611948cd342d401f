"""Helpers for the verifier tests: a fake clock, signers, a token minter, a JWKS stub.

Everything is local: the JWKS endpoint is an ``httpx.MockTransport`` handler
that counts fetches, and time only moves when a test advances
:class:`FakeClock`. (A module, not conftest, so tests can import it; the name
is unique because ``tests/`` has no ``__init__.py``.)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import Key

from authsvc.jose import registry_for

ISSUER = "https://issuer.test"
JWKS_URL = ISSUER + "/.well-known/jwks.json"
AUDIENCE = "orders-api"
T0 = 1_700_000_000.0

DELETE: Any = object()


class FakeClock:
    """Epoch seconds that move only when told to."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Signer:
    """A private key, its alg, and the public JWK the issuer publishes for it."""

    key: Key
    alg: str
    publish_alg: bool = True

    @property
    def kid(self) -> str:
        return self.key.thumbprint()

    @property
    def jwk(self) -> dict[str, Any]:
        jwk = {**self.key.as_dict(private=False), "kid": self.kid, "use": "sig"}
        if self.publish_alg:
            jwk["alg"] = self.alg
        return jwk


def b64(data: bytes | str | dict[str, Any]) -> str:
    """base64url without padding, of bytes, text or JSON."""
    if isinstance(data, dict):
        data = json.dumps(data)
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def default_claims(now: float, **overrides: Any) -> dict[str, Any]:
    """RFC 9068 claims of a valid token; an override of ``DELETE`` drops the claim."""
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-7f3a",
        "aud": AUDIENCE,
        "exp": int(now) + 900,
        "iat": int(now),
        "jti": "jti-1",
        "client_id": "cli",
        "scope": "orders:read profile",
        "sid": "session-1",
    }
    for name, value in overrides.items():
        if value is DELETE:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def sign_raw(signer: Signer, header: dict[str, Any] | str, payload: dict[str, Any] | bytes | str) -> str:
    """Sign exactly the given header and payload, bypassing joserfc's header checks.

    Hostile tokens (unknown ``crit``, duplicate claims, NaN) need a real
    signature to prove the refusal does not come from the signature check.
    """
    header_segment = b64(header)
    payload_segment = b64(payload)
    signing_input = f"{header_segment}.{payload_segment}".encode()
    algorithm = registry_for(signer.alg).get_alg(signer.alg)
    return f"{header_segment}.{payload_segment}.{b64(algorithm.sign(signing_input, signer.key))}"


class Minter:
    """Mints access tokens the way authsvc's issuer does, with knobs for tests.

    Keyword claims override the defaults; ``DELETE`` drops a claim or header.
    """

    def __init__(self, signer: Signer, clock: FakeClock) -> None:
        self.signer = signer
        self.clock = clock

    def __call__(
        self,
        signer: Signer | None = None,
        *,
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        signer = signer or self.signer
        full_header: dict[str, Any] = {"alg": signer.alg, "kid": signer.kid, "typ": "at+jwt"}
        for name, value in (header or {}).items():
            if value is DELETE:
                full_header.pop(name, None)
            else:
                full_header[name] = value
        return jwt.encode(
            full_header,
            default_claims(self.clock.now, **claims),
            signer.key,
            registry=registry_for(full_header.get("alg", signer.alg)),
            default_type=None,
        )


class JWKSStub:
    """A JWKS endpoint for ``httpx.MockTransport`` that counts fetches.

    ``mode``: ``ok``; ``down`` (connection error); ``500``; ``garbage`` (200 with
    HTML); ``gate`` (like ok, but waits for ``release()`` first: async only).
    """

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = keys
        self.cache_control: str | None = "public, max-age=300"
        self.age: str | None = None
        self.use_etag = True
        self.mode = "ok"
        self.fetches = 0
        self.not_modified = 0
        self.requests: list[httpx.Request] = []
        self._gate: asyncio.Event | None = None

    @property
    def body(self) -> bytes:
        return json.dumps({"keys": self.keys}, sort_keys=True).encode()

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'

    def hold(self) -> None:
        """Make the next async fetches wait until ``release()``."""
        self._gate = asyncio.Event()

    def release(self) -> None:
        assert self._gate is not None
        self._gate.set()

    def respond(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        self.requests.append(request)
        if self.mode == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if self.mode == "500":
            return httpx.Response(500, text="oops")
        if self.mode == "garbage":
            return httpx.Response(200, text="<html>maintenance</html>")
        headers: dict[str, str] = {"Content-Type": "application/jwk-set+json"}
        if self.cache_control is not None:
            headers["Cache-Control"] = self.cache_control
        if self.age is not None:
            headers["Age"] = self.age
        if self.use_etag:
            headers["ETag"] = self.etag
            if request.headers.get("if-none-match") == self.etag:
                self.not_modified += 1
                return httpx.Response(304, headers=headers)
        return httpx.Response(200, headers=headers, content=self.body)

    async def respond_async(self, request: httpx.Request) -> httpx.Response:
        if self._gate is not None:
            await self._gate.wait()
        return self.respond(request)

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.respond_async))

    def sync_client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.respond))
