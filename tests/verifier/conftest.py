"""Fixtures for the verifier SDK tests: session keys, fake clock, JWKS stub, verifiers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey, OKPKey, RSAKey
from verifier_dpop_support import DpopClient, ProofKey, proof_keys
from verifier_support import AUDIENCE, ISSUER, FakeClock, JWKSStub, Minter, Signer

from authsvc.verifier import SyncVerifier, Verifier


@pytest.fixture(scope="session")
def rsa_signer() -> Signer:
    return Signer(RSAKey.generate_key(2048), "RS256")


@pytest.fixture(scope="session")
def ps_signer() -> Signer:
    return Signer(RSAKey.generate_key(2048), "PS256")


@pytest.fixture(scope="session")
def ed_signer() -> Signer:
    return Signer(OKPKey.generate_key("Ed25519"), "EdDSA")


@pytest.fixture(scope="session")
def ec_signer() -> Signer:
    return Signer(ECKey.generate_key("P-256"), "ES256")


@pytest.fixture(scope="session")
def foreign_rsa() -> Signer:
    """An RSA key the issuer never published."""
    return Signer(RSAKey.generate_key(2048), "RS256")


@pytest.fixture(scope="session")
def foreign_ed() -> Signer:
    """An Ed25519 key the issuer never published."""
    return Signer(OKPKey.generate_key("Ed25519"), "EdDSA")


@pytest.fixture(scope="session")
def dpop_keys() -> dict[str, ProofKey]:
    """A client DPoP key per proof algorithm (ES256, EdDSA, Ed25519, RS256, PS256)."""
    return proof_keys()


@pytest.fixture
def dpop_client(dpop_keys: dict[str, ProofKey], mint: Minter, clock: FakeClock) -> DpopClient:
    """A client with an ES256 proof key, minting tokens bound to it."""
    return DpopClient(dpop_keys["ES256"], mint, clock)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def jwks(rsa_signer: Signer, ed_signer: Signer, ec_signer: Signer, ps_signer: Signer) -> JWKSStub:
    return JWKSStub([rsa_signer.jwk, ed_signer.jwk, ec_signer.jwk, ps_signer.jwk])


@pytest.fixture
def mint(rsa_signer: Signer, clock: FakeClock) -> Minter:
    return Minter(rsa_signer, clock)


@pytest.fixture
async def make_verifier(jwks: JWKSStub, clock: FakeClock) -> AsyncIterator[Callable[..., Verifier]]:
    """Build async verifiers wired to the JWKS stub and the fake clock."""
    clients: list[httpx.AsyncClient] = []

    def build(**kwargs: Any) -> Verifier:
        client = jwks.async_client()
        clients.append(client)
        kwargs.setdefault("http", client)
        kwargs.setdefault("clock", clock)
        return Verifier(kwargs.pop("issuer", ISSUER), kwargs.pop("audience", AUDIENCE), **kwargs)

    yield build
    for client in clients:
        await client.aclose()


@pytest.fixture
async def verifier(make_verifier: Callable[..., Verifier]) -> Verifier:
    return make_verifier()


@pytest.fixture
def make_sync_verifier(jwks: JWKSStub, clock: FakeClock) -> Iterator[Callable[..., SyncVerifier]]:
    """Build sync verifiers wired to the JWKS stub and the fake clock."""
    clients: list[httpx.Client] = []

    def build(**kwargs: Any) -> SyncVerifier:
        client = jwks.sync_client()
        clients.append(client)
        kwargs.setdefault("http", client)
        kwargs.setdefault("clock", clock)
        return SyncVerifier(kwargs.pop("issuer", ISSUER), kwargs.pop("audience", AUDIENCE), **kwargs)

    yield build
    for client in clients:
        client.close()
