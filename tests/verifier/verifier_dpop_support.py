"""Helpers for the verifier's DPoP tests: client proof keys, proofs, bound tokens, Redis.

Proofs are signed by joserfc exactly as a client would make them; ``sign_raw``
from ``verifier_support`` is there for the ones a client library would refuse
to make. Times come from the tests' ``FakeClock``. (The name differs from
``tests/dpop_support.py``, the server tests' helpers: ``tests/verifier`` has no
``__init__.py``, so its modules are imported by their bare names.)
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey
from verifier_support import DELETE, FakeClock, Minter

from authsvc.dpop import access_token_hash
from authsvc.jose import registry_for

URL = "https://api.example/orders"

_jtis = itertools.count()


@dataclass(frozen=True)
class ProofKey:
    """A client's DPoP key and the algorithm it signs proofs with."""

    key: Key
    alg: str

    @property
    def jkt(self) -> str:
        """The RFC 7638 thumbprint a token bound to this key carries in ``cnf.jkt``."""
        return self.key.thumbprint()

    @property
    def public_jwk(self) -> dict[str, Any]:
        return self.key.as_dict(private=False)

    def header(self, **overrides: Any) -> dict[str, Any]:
        header: dict[str, Any] = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.public_jwk}
        return _apply(header, overrides)

    def claims(
        self, now: float, *, token: str | None = None, method: str = "GET", url: str = URL, **overrides: Any
    ) -> dict[str, Any]:
        claims: dict[str, Any] = {"jti": f"proof-{next(_jtis)}", "htm": method, "htu": url, "iat": int(now)}
        if token is not None:
            claims["ath"] = access_token_hash(token)
        return _apply(claims, overrides)

    def proof(
        self,
        now: float,
        *,
        token: str | None = None,
        method: str = "GET",
        url: str = URL,
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A proof signed by this key; keyword claims override (``DELETE`` drops one)."""
        full_header = self.header(**(header or {}))
        payload = json.dumps(self.claims(now, token=token, method=method, url=url, **claims))
        return jws.serialize_compact(full_header, payload, self.key, registry=registry_for(self.alg))


def _apply(values: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for name, value in overrides.items():
        if value is DELETE:
            values.pop(name, None)
        else:
            values[name] = value
    return values


def proof_keys() -> dict[str, ProofKey]:
    """One client key per proof algorithm authsvc accepts."""
    return {
        "ES256": ProofKey(ECKey.generate_key("P-256"), "ES256"),
        "EdDSA": ProofKey(OKPKey.generate_key("Ed25519"), "EdDSA"),
        "Ed25519": ProofKey(OKPKey.generate_key("Ed25519"), "Ed25519"),
        "RS256": ProofKey(RSAKey.generate_key(2048), "RS256"),
        "PS256": ProofKey(RSAKey.generate_key(2048), "PS256"),
    }


class DpopClient:
    """A client holding one proof key: mints tokens bound to it and proofs for them."""

    def __init__(self, key: ProofKey, mint: Minter, clock: FakeClock) -> None:
        self.key = key
        self.mint = mint
        self.clock = clock

    def token(self, **claims: Any) -> str:
        claims.setdefault("cnf", {"jkt": self.key.jkt})
        return self.mint(**claims)

    def proof(self, token: str | None, **options: Any) -> str:
        return self.key.proof(self.clock.now, token=token, **options)


def redis_url() -> str:
    """Redis for tests: as tests/trust_support.py's ``redis_url``, and a failure (not a skip)
    when AUTHSVC_TEST_REDIS_URL is unset under CI=true."""
    if not os.environ.get("AUTHSVC_TEST_REDIS_URL") and os.environ.get("CI", "").lower() in (
        "true",
        "1",
        "yes",
    ):
        pytest.fail("CI is set but AUTHSVC_TEST_REDIS_URL is not: the Redis replay tests must run")
    from tests.trust_support import redis_url as shared_redis_url

    return shared_redis_url()
