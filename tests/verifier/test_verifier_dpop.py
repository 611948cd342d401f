"""DPoP at the verifier (RFC 9449 §7): bound tokens need a proof by their key, once.

Tokens are minted as authsvc's issuer mints them, with ``cnf.jkt`` naming a
client key; proofs are signed by joserfc with that key (ES256, EdDSA, the RFC
9864 name Ed25519, RS256, PS256). The async and sync verifiers share one core,
so the rules are checked on the async one and the sync one is shown to follow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from verifier_dpop_support import URL, DpopClient, ProofKey
from verifier_support import DELETE, FakeClock, Minter, Signer, sign_raw

from authsvc.verifier import (
    DpopRequest,
    InMemoryReplayCache,
    InvalidToken,
    RotatingNonces,
    SyncVerifier,
    Verifier,
)


def request(proof: str, method: str = "GET", url: str = URL) -> DpopRequest:
    return DpopRequest(proof=proof, method=method, url=url)


async def refused(verifier: Verifier, token: str, dpop: DpopRequest | None, **kwargs: Any) -> InvalidToken:
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token, dpop=dpop, **kwargs)
    return caught.value


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "Ed25519", "RS256", "PS256"])
async def test_bound_token_with_a_proof_by_its_key(
    verifier: Verifier, dpop_keys: dict[str, ProofKey], mint: Minter, clock: FakeClock, alg: str
) -> None:
    client = DpopClient(dpop_keys[alg], mint, clock)
    token = client.token()
    claims = await verifier.verify(token, dpop=request(client.proof(token)), scopes=["orders:read"])
    assert claims["cnf"] == {"jkt": dpop_keys[alg].jkt}
    assert claims["sub"] == "user-7f3a"


@pytest.mark.parametrize("alg", ["ES256", "Ed25519", "RS256"])
def test_sync_verifier_takes_proofs_too(
    make_sync_verifier: Callable[..., SyncVerifier],
    dpop_keys: dict[str, ProofKey],
    mint: Minter,
    clock: FakeClock,
    alg: str,
) -> None:
    verifier = make_sync_verifier()
    client = DpopClient(dpop_keys[alg], mint, clock)
    token = client.token()
    proof = client.proof(token)
    assert verifier.verify(token, dpop=request(proof))["cnf"] == {"jkt": dpop_keys[alg].jkt}
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token, dpop=request(proof))
    assert (caught.value.code, caught.value.reason) == ("invalid_dpop_proof", "replayed_dpop_proof")
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token)
    assert (caught.value.code, caught.value.reason, caught.value.scheme) == (
        "invalid_token",
        "dpop_required",
        "Bearer",
    )


async def test_bound_token_without_a_proof_is_refused(verifier: Verifier, dpop_client: DpopClient) -> None:
    error = await refused(verifier, dpop_client.token(), None)
    assert (error.code, error.reason, error.scheme) == ("invalid_token", "dpop_required", "Bearer")
    # Whatever it holds: the binding is checked before the scopes.
    error = await refused(verifier, dpop_client.token(), None, scopes=["admin"])
    assert error.reason == "dpop_required"


async def test_unbound_token_with_a_proof_is_refused(
    verifier: Verifier, dpop_client: DpopClient, mint: Minter
) -> None:
    token = mint()
    error = await refused(verifier, token, request(dpop_client.proof(token)))
    assert (error.code, error.reason, error.scheme) == ("invalid_token", "not_dpop_bound", "DPoP")
    assert (await verifier.verify(token))["sub"] == "user-7f3a"  # still a fine bearer token


async def test_proof_by_another_key(
    verifier: Verifier, dpop_client: DpopClient, dpop_keys: dict[str, ProofKey], clock: FakeClock
) -> None:
    token = dpop_client.token()
    for other in ("EdDSA", "RS256"):
        proof = dpop_keys[other].proof(clock.now, token=token)  # a valid proof, by the wrong key
        error = await refused(verifier, token, request(proof))
        assert (error.code, error.reason, error.scheme) == ("invalid_token", "dpop_key_mismatch", "DPoP")


@pytest.mark.parametrize(
    ("options", "detail"),
    [
        ({"ath": "x" * 43}, "ath"),
        ({"ath": DELETE}, "ath"),
        ({"method": "POST"}, "htm"),
        ({"htm": "get"}, "htm"),
        ({"url": "https://api.example/orders/1"}, "htu"),
        ({"url": "https://other.example/orders"}, "htu"),
        ({"url": "http://api.example/orders"}, "htu"),
        ({"url": "https://api.example:8443/orders"}, "htu"),
        ({"htu": DELETE}, "htu"),
        ({"jti": DELETE}, "jti"),
        ({"jti": ""}, "jti"),
        ({"jti": "j" * 257}, "jti"),
        ({"iat": "1700000000"}, "iat"),
        ({"iat": DELETE}, "iat"),
        ({"header": {"typ": "jwt"}}, "typ"),
        ({"header": {"typ": DELETE}}, "typ"),
        ({"header": {"jwk": DELETE}}, "jwk"),
    ],
)
async def test_proof_that_does_not_fit_the_request(
    verifier: Verifier, dpop_client: DpopClient, options: dict[str, Any], detail: str
) -> None:
    token = dpop_client.token()
    error = await refused(verifier, token, request(dpop_client.proof(token, **options)))
    assert (error.code, error.reason, error.scheme) == ("invalid_dpop_proof", "bad_dpop_proof", "DPoP")
    assert error.detail is not None and detail in error.detail


async def test_proof_for_another_token(verifier: Verifier, dpop_client: DpopClient) -> None:
    token, other = dpop_client.token(), dpop_client.token(jti="jti-2")
    error = await refused(verifier, token, request(dpop_client.proof(other)))
    assert (error.code, error.reason) == ("invalid_dpop_proof", "bad_dpop_proof")


@pytest.mark.parametrize(
    "htu",
    [
        URL + "?page=2",
        URL + "#top",
        "HTTPS://API.EXAMPLE/orders",
        "https://api.example:443/orders",
    ],
)
async def test_htu_is_compared_without_query_and_normalised(
    verifier: Verifier, dpop_client: DpopClient, htu: str
) -> None:
    token = dpop_client.token()
    await verifier.verify(token, dpop=request(dpop_client.proof(token, htu=htu), url=URL + "?page=3"))


async def test_iat_window(
    make_verifier: Callable[..., Verifier], dpop_client: DpopClient, clock: FakeClock
) -> None:
    verifier = make_verifier(dpop_leeway=10)
    token = dpop_client.token()
    for offset in (-10, 10, 0):
        await verifier.verify(token, dpop=request(dpop_client.proof(token, iat=clock.now + offset)))
    for offset in (-11, 11, -3600, 3600):
        error = await refused(verifier, token, request(dpop_client.proof(token, iat=clock.now + offset)))
        assert (error.code, error.reason) == ("invalid_dpop_proof", "bad_dpop_proof")
        assert error.detail is not None and "iat" in error.detail


async def test_a_proof_is_accepted_once(
    make_verifier: Callable[..., Verifier], dpop_client: DpopClient, clock: FakeClock
) -> None:
    verifier = make_verifier(dpop_leeway=30)
    token = dpop_client.token()
    proof = dpop_client.proof(token)
    await verifier.verify(token, dpop=request(proof))
    for _ in range(31):  # for as long as its iat can be accepted (30 s included), it is remembered
        error = await refused(verifier, token, request(proof))
        assert (error.code, error.reason, error.scheme) == (
            "invalid_dpop_proof",
            "replayed_dpop_proof",
            "DPoP",
        )
        clock.advance(1)
    error = await refused(verifier, token, request(proof))
    assert error.reason == "bad_dpop_proof"  # then its iat is too old
    # Another proof with the same jti by the same key is the same proof.
    again = dpop_client.proof(token, jti="fixed")
    await verifier.verify(token, dpop=request(again))
    clock.advance(5)
    error = await refused(verifier, token, request(dpop_client.proof(token, jti="fixed")))
    assert error.reason == "replayed_dpop_proof"


async def test_a_refused_request_does_not_spend_the_proof(
    verifier: Verifier, dpop_client: DpopClient
) -> None:
    token = dpop_client.token()
    proof = dpop_client.proof(token)
    error = await refused(verifier, token, request(proof), scopes=["admin"])
    assert (error.code, error.scheme) == ("insufficient_scope", "DPoP")
    await verifier.verify(token, dpop=request(proof), scopes=["orders:read"])


async def test_verifiers_sharing_a_cache_accept_a_proof_once(
    make_verifier: Callable[..., Verifier], dpop_client: DpopClient, clock: FakeClock
) -> None:
    cache = InMemoryReplayCache(clock=clock)
    first, second = make_verifier(dpop_replay=cache), make_verifier(dpop_replay=cache)
    token = dpop_client.token()
    proof = dpop_client.proof(token)
    await first.verify(token, dpop=request(proof))
    error = await refused(second, token, request(proof))
    assert error.reason == "replayed_dpop_proof"


async def test_nonce_demanded(
    make_verifier: Callable[..., Verifier], dpop_client: DpopClient, clock: FakeClock
) -> None:
    nonces = RotatingNonces(b"resource-server-secret", window=60, clock=clock)
    verifier = make_verifier(dpop_nonces=nonces)
    token = dpop_client.token()
    error = await refused(verifier, token, request(dpop_client.proof(token)))
    assert (error.code, error.reason, error.scheme) == ("use_dpop_nonce", "dpop_nonce_required", "DPoP")
    assert error.nonce == nonces.current()
    await verifier.verify(token, dpop=request(dpop_client.proof(token, nonce=error.nonce)))
    for wrong in ("", "made-up", nonces.current() + "x", 7):
        error = await refused(verifier, token, request(dpop_client.proof(token, nonce=wrong)))
        assert error.code == "use_dpop_nonce"
    stale = nonces.current()
    clock.advance(120)
    error = await refused(verifier, token, request(dpop_client.proof(token, nonce=stale)))
    assert error.code == "use_dpop_nonce" and error.nonce != stale


@pytest.mark.parametrize(
    ("cnf", "reason"),
    [
        ("thumbprint", "malformed"),
        ({"jkt": 7}, "malformed"),
        ({"jkt": ""}, "malformed"),
        ({}, "unsupported_confirmation"),
        ({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}, "unsupported_confirmation"),
    ],
)
async def test_a_binding_the_verifier_cannot_check_is_refused(
    verifier: Verifier, dpop_client: DpopClient, cnf: Any, reason: str
) -> None:
    token = dpop_client.token(cnf=cnf)
    for dpop in (None, request(dpop_client.proof(token))):
        error = await refused(verifier, token, dpop)
        assert (error.code, error.reason) == ("invalid_token", reason)


async def test_key_binding_beside_another_method_is_refused(
    verifier: Verifier, dpop_client: DpopClient
) -> None:
    token = dpop_client.token(cnf={"jkt": dpop_client.key.jkt, "x5t#S256": "abc"})
    error = await refused(verifier, token, request(dpop_client.proof(token)))
    assert error.reason == "unsupported_confirmation"


async def test_token_refusals_keep_their_reason_under_dpop(
    verifier: Verifier, dpop_client: DpopClient
) -> None:
    token = dpop_client.token(exp=int(dpop_client.clock.now) - 3600)
    error = await refused(verifier, token, request(dpop_client.proof(token)))
    assert (error.code, error.reason, error.scheme) == ("invalid_token", "expired", "DPoP")


class _BrokenCache:
    async def first_use(self, owner: str, jti: str, expires_at: float) -> bool:
        raise ConnectionError("redis is down")


async def test_a_failing_replay_cache_fails_closed(
    make_verifier: Callable[..., Verifier],
    make_sync_verifier: Callable[..., SyncVerifier],
    dpop_client: DpopClient,
) -> None:
    token = dpop_client.token()
    error = await refused(make_verifier(dpop_replay=_BrokenCache()), token, request(dpop_client.proof(token)))
    assert (error.code, error.reason) == ("invalid_token", "replay_cache_unavailable")
    with pytest.raises(InvalidToken) as caught:
        make_sync_verifier(dpop_replay=_BrokenCache()).verify(token, dpop=request(dpop_client.proof(token)))
    assert caught.value.reason == "replay_cache_unavailable"


class _SuspendingCache:
    async def first_use(self, owner: str, jti: str, expires_at: float) -> bool:
        await asyncio.sleep(0)
        return True


def test_sync_verifier_refuses_a_cache_that_awaits(
    make_sync_verifier: Callable[..., SyncVerifier], dpop_client: DpopClient
) -> None:
    verifier = make_sync_verifier(dpop_replay=_SuspendingCache())
    token = dpop_client.token()
    with pytest.raises(TypeError, match="without awaiting"):
        verifier.verify(token, dpop=request(dpop_client.proof(token)))


def test_constructor_checks_the_dpop_options(make_verifier: Callable[..., Verifier]) -> None:
    with pytest.raises(TypeError):
        make_verifier(dpop_replay=object())
    with pytest.raises(TypeError):
        make_verifier(dpop_nonces="secret")
    with pytest.raises(ValueError):
        make_verifier(dpop_leeway=-1)
    with pytest.raises(TypeError):
        DpopRequest(proof=None, method="GET", url=URL)  # type: ignore[arg-type]


# --- hostile proofs: never anything but InvalidToken ------------------------------------------
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_HOSTILE = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@_HOSTILE
@given(data=st.data())
def test_a_mutated_proof_is_refused(
    make_sync_verifier: Callable[..., SyncVerifier], dpop_client: DpopClient, data: st.DataObject
) -> None:
    verifier = make_sync_verifier()
    token = dpop_client.token()
    proof = dpop_client.proof(token)
    at = data.draw(st.integers(0, 4096), label="at") % len(proof)  # proofs differ in length (jti)
    kind = data.draw(st.sampled_from(["replace", "insert", "delete", "truncate"]), label="kind")
    char = data.draw(st.sampled_from(_B64 + ".=") | st.characters(), label="char")
    mutated = {
        "replace": proof[:at] + char + proof[at + 1 :],
        "insert": proof[:at] + char + proof[at:],
        "delete": proof[:at] + proof[at + 1 :],
        "truncate": proof[:at],
    }[kind]
    if mutated == proof:
        return
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token, dpop=request(mutated))
    assert caught.value.code == "invalid_dpop_proof"


@_HOSTILE
@given(junk=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_junk_is_refused(
    make_sync_verifier: Callable[..., SyncVerifier], dpop_client: DpopClient, junk: str
) -> None:
    token = dpop_client.token()
    with pytest.raises(InvalidToken) as caught:
        make_sync_verifier().verify(token, dpop=request(junk))
    assert caught.value.code == "invalid_dpop_proof"


@_HOSTILE
@given(
    claims=st.dictionaries(st.sampled_from(["jti", "htm", "htu", "iat", "ath", "nonce"]), _JSON, min_size=1),
    header=st.dictionaries(st.sampled_from(["typ", "alg", "jwk", "kid", "crit", "jku"]), _JSON, max_size=2),
)
def test_any_signed_claims_are_accepted_or_refused_cleanly(
    make_sync_verifier: Callable[..., SyncVerifier],
    dpop_client: DpopClient,
    claims: dict[str, Any],
    header: dict[str, Any],
) -> None:
    verifier = make_sync_verifier()
    token = dpop_client.token()
    key = dpop_client.key
    payload = key.claims(dpop_client.clock.now, token=token, **claims)
    signed = sign_raw(Signer(key.key, key.alg), key.header(**header), payload)
    outcome = "accepted"
    try:
        verifier.verify(token, dpop=request(signed))
    except InvalidToken as exc:
        outcome = exc.code
    assert outcome in {"accepted", "invalid_dpop_proof"}
