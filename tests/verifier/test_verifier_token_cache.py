"""The cache of verified tokens (issue 18): a token seen again skips its signature and parsing,
never the checks that depend on the call or the time.

Hits are told apart from full verifications by counting signature checks
(``check_signature`` as the core calls it). The JWKS endpoint is the stub of
the other verifier tests; time moves only with the fake clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from verifier_dpop_support import URL, DpopClient
from verifier_support import FakeClock, JWKSStub, Minter, Signer

import authsvc.verifier.core as verifier_core
from authsvc.verifier import DpopRequest, InvalidToken, SyncVerifier, Verifier


class SignatureChecks:
    """Counts the signature checks the verifier makes (one per full verification)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self._lock = threading.Lock()
        check = verifier_core.check_signature

        def counting(*args: Any) -> None:
            with self._lock:
                self.count += 1
            check(*args)

        monkeypatch.setattr(verifier_core, "check_signature", counting)


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> SignatureChecks:
    return SignatureChecks(monkeypatch)


async def reason_of(verifier: Verifier, token: str, **kwargs: Any) -> str:
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token, **kwargs)
    return caught.value.reason


async def test_a_token_seen_again_skips_its_signature_and_gives_the_same_claims(
    verifier: Verifier, mint: Minter, checks: SignatureChecks
) -> None:
    token = mint(aud=["orders-api", "billing"], extra={"roles": ["a"]})
    first = await verifier.verify(token)
    assert checks.count == 1
    again = await verifier.verify(token)
    assert checks.count == 1
    assert again == first
    assert verifier.cached_tokens == 1
    # The claims are the caller's: changing them, nested values too, changes no later answer.
    again["aud"].append("admin-api")
    again["extra"]["roles"].append("root")
    again["scope"] = "admin"
    third = await verifier.verify(token)
    assert third == first
    assert third["aud"] == ["orders-api", "billing"]
    assert checks.count == 1


async def test_a_refused_token_is_never_cached(
    verifier: Verifier, mint: Minter, foreign_rsa: Signer, checks: SignatureChecks
) -> None:
    token = mint()
    forged = token.rsplit(".", 1)[0] + "." + mint(foreign_rsa).rsplit(".", 1)[1]
    for _ in range(2):
        assert await reason_of(verifier, forged) == "bad_signature"
    assert await reason_of(verifier, mint(aud="other-api")) == "bad_audience"
    assert verifier.cached_tokens == 0
    assert checks.count == 3


async def test_a_cached_token_expires_on_the_injected_clock(
    make_verifier: Callable[..., Verifier], mint: Minter, clock: FakeClock, checks: SignatureChecks
) -> None:
    verifier = make_verifier(leeway=10)
    token = mint(exp=int(clock.now) + 100)
    await verifier.verify(token)
    clock.advance(109)  # inside the leeway: still a hit
    await verifier.verify(token)
    assert checks.count == 1
    clock.advance(1)
    assert await reason_of(verifier, token) == "expired"
    assert verifier.cached_tokens == 0


async def test_a_cached_token_is_refused_when_the_clock_goes_back_before_its_iat(
    make_verifier: Callable[..., Verifier], mint: Minter, clock: FakeClock
) -> None:
    verifier = make_verifier(leeway=10)
    token = mint(nbf=int(clock.now) + 5)
    clock.advance(5)
    await verifier.verify(token)
    clock.advance(-16)
    assert await reason_of(verifier, token) == "not_yet_valid"
    clock.advance(16)
    await verifier.verify(token)


async def test_scopes_are_checked_on_every_hit(
    verifier: Verifier, mint: Minter, checks: SignatureChecks
) -> None:
    token = mint(scope="orders:read")
    await verifier.verify(token, scopes=["orders:read"])
    assert await reason_of(verifier, token, scopes=["orders:write"]) == "insufficient_scope"
    assert await reason_of(verifier, token, scopes="orders:read profile") == "insufficient_scope"
    assert (await verifier.verify(token, scopes="orders:read"))["scope"] == "orders:read"
    assert checks.count == 1


async def test_a_kid_the_jwks_loses_drops_its_tokens_at_the_next_fetch(
    verifier: Verifier,
    jwks: JWKSStub,
    mint: Minter,
    clock: FakeClock,
    rsa_signer: Signer,
    ed_signer: Signer,
) -> None:
    rsa_token, ed_token = mint(rsa_signer), mint(ed_signer)
    await verifier.verify(rsa_token)
    await verifier.verify(ed_token)
    assert verifier.cached_tokens == 2
    jwks.keys = [ed_signer.jwk]  # the RSA key was revoked: it leaves the JWKS
    clock.advance(299)
    await verifier.verify(rsa_token)  # the keys are still fresh: nothing learned yet
    clock.advance(1)  # the JWKS expires: the next call fetches it, hit or not
    assert await reason_of(verifier, rsa_token) == "no_matching_key"
    assert verifier.cached_tokens == 1
    assert (await verifier.verify(ed_token))["sub"] == "user-7f3a"


async def test_a_revoked_key_is_learned_through_an_unknown_kid_fetch_and_drops_its_tokens_at_once(
    verifier: Verifier,
    jwks: JWKSStub,
    mint: Minter,
    clock: FakeClock,
    rsa_signer: Signer,
    ed_signer: Signer,
    foreign_ed: Signer,
) -> None:
    rsa_token = mint(rsa_signer, exp=int(clock.now) + 3600)
    await verifier.verify(rsa_token)
    await verifier.verify(mint(ed_signer))
    # The issuer revokes its RSA key and publishes a new one; a token of the new key arrives
    # well inside the JWKS lifetime (past the unknown-kid cooldown): its kid triggers the fetch.
    jwks.keys = [ed_signer.jwk, foreign_ed.jwk]
    clock.advance(30)
    await verifier.verify(rsa_token)  # nothing learned yet: still a hit
    await verifier.verify(mint(foreign_ed))
    assert jwks.fetches == 2
    assert await reason_of(verifier, rsa_token) == "no_matching_key"
    assert verifier.cached_tokens == 2  # the Ed25519 tokens only


@pytest.mark.parametrize("change", ["another key under the kid", "use enc", "key_ops without verify"])
async def test_a_kid_whose_published_key_changes_drops_its_tokens(
    verifier: Verifier,
    jwks: JWKSStub,
    mint: Minter,
    clock: FakeClock,
    rsa_signer: Signer,
    ed_signer: Signer,
    foreign_rsa: Signer,
    change: str,
    checks: SignatureChecks,
) -> None:
    token = mint(rsa_signer)
    await verifier.verify(token)
    if change == "another key under the kid":
        replaced = {**foreign_rsa.jwk, "kid": rsa_signer.kid}
    elif change == "use enc":
        replaced = {**rsa_signer.jwk, "use": "enc"}
    else:
        replaced = {**rsa_signer.jwk, "key_ops": ["encrypt"]}
    jwks.keys = [replaced, ed_signer.jwk]
    clock.advance(300)
    reason = await reason_of(verifier, token)
    assert reason == ("bad_signature" if change == "another key under the kid" else "no_matching_key")
    assert verifier.cached_tokens == 0
    assert checks.count == (2 if change == "another key under the kid" else 1)


async def test_an_unchanged_jwks_keeps_the_cache(
    verifier: Verifier, jwks: JWKSStub, mint: Minter, clock: FakeClock, checks: SignatureChecks
) -> None:
    jwks.use_etag = False  # every refresh is a 200 with the same keys, imported anew
    token = mint()
    await verifier.verify(token)
    clock.advance(300)
    await verifier.verify(token)
    assert jwks.fetches == 2
    assert checks.count == 1


async def test_a_jwks_unusable_past_stale_if_error_refuses_cached_tokens(
    make_verifier: Callable[..., Verifier], jwks: JWKSStub, mint: Minter, clock: FakeClock
) -> None:
    verifier = make_verifier(stale_if_error=100)
    token = mint(exp=int(clock.now) + 3600)
    await verifier.verify(token)
    jwks.mode = "down"
    clock.advance(300)
    await verifier.verify(token)  # stale keys, inside stale_if_error: still accepted
    clock.advance(100)
    assert await reason_of(verifier, token) == "jwks_unavailable"


async def test_the_bound_is_honoured_and_zero_disables(
    make_verifier: Callable[..., Verifier], mint: Minter, checks: SignatureChecks
) -> None:
    bounded = make_verifier(token_cache_size=3)
    tokens = [mint(jti=f"jti-{i}") for i in range(10)]
    for token in tokens:
        await bounded.verify(token)
        assert bounded.cached_tokens <= 3
    assert bounded.cached_tokens == 3
    checks.count = 0
    for token in tokens[-3:]:  # the newest stay
        await bounded.verify(token)
    assert checks.count == 0
    await bounded.verify(tokens[0])  # the oldest went
    assert checks.count == 1

    disabled = make_verifier(token_cache_size=0)
    for _ in range(3):
        await disabled.verify(tokens[0])
    assert disabled.cached_tokens == 0
    assert checks.count == 4


@pytest.mark.parametrize("size", [-1, 1.5, True, "10"])
def test_the_size_must_be_a_non_negative_integer(size: object) -> None:
    with pytest.raises(ValueError, match="token_cache_size"):
        Verifier("https://issuer.test", "orders-api", token_cache_size=size)  # type: ignore[arg-type]


async def test_a_cached_dpop_bound_token_still_needs_a_valid_proof_each_time(
    verifier: Verifier, dpop_client: DpopClient, mint: Minter, checks: SignatureChecks
) -> None:
    token = dpop_client.token()
    proof = dpop_client.proof(token)
    await verifier.verify(token, dpop=DpopRequest(proof, "GET", URL))
    assert checks.count == 1
    assert verifier.cached_tokens == 1

    assert await reason_of(verifier, token) == "dpop_required"  # sent as Bearer
    assert await reason_of(verifier, token, dpop=DpopRequest(proof, "GET", URL)) == "replayed_dpop_proof"
    other = dpop_client.proof(mint(jti="jti-other", cnf={"jkt": dpop_client.key.jkt}))
    assert await reason_of(verifier, token, dpop=DpopRequest(other, "GET", URL)) == "bad_dpop_proof"
    wrong_method = dpop_client.proof(token)
    assert await reason_of(verifier, token, dpop=DpopRequest(wrong_method, "POST", URL)) == "bad_dpop_proof"
    claims = await verifier.verify(token, dpop=DpopRequest(dpop_client.proof(token), "GET", URL))
    assert claims["cnf"] == {"jkt": dpop_client.key.jkt}
    assert checks.count == 1  # every one of those was a hit


async def test_a_cached_bearer_token_sent_with_a_proof_is_refused(
    verifier: Verifier, mint: Minter, dpop_client: DpopClient
) -> None:
    token = mint()
    await verifier.verify(token)
    proof = dpop_client.proof(token)
    assert await reason_of(verifier, token, dpop=DpopRequest(proof, "GET", URL)) == "not_dpop_bound"


def test_threads_hammering_the_sync_verifier(
    make_sync_verifier: Callable[..., SyncVerifier],
    jwks: JWKSStub,
    mint: Minter,
    clock: FakeClock,
    rsa_signer: Signer,
    ed_signer: Signer,
) -> None:
    verifier = make_sync_verifier(token_cache_size=8)
    tokens = [(f"user-{i}", mint(rsa_signer if i % 2 else ed_signer, sub=f"user-{i}")) for i in range(24)]
    errors: list[str] = []
    sizes: list[int] = []
    start = threading.Barrier(8)

    def hammer(offset: int) -> None:
        start.wait()
        for n in range(300):
            sub, token = tokens[(offset + n * (offset + 1)) % len(tokens)]
            try:
                claims = verifier.verify(token, scopes=["orders:read"])
            except InvalidToken as exc:
                errors.append(exc.reason)
            else:
                if claims["sub"] != sub:
                    errors.append(f"{sub} got {claims['sub']}")
            sizes.append(verifier.cached_tokens)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert len(sizes) == 8 * 300
    assert max(sizes) <= 8
    assert jwks.fetches == 1


def test_threads_verifying_while_a_kid_is_dropped(
    make_sync_verifier: Callable[..., SyncVerifier],
    jwks: JWKSStub,
    mint: Minter,
    clock: FakeClock,
    rsa_signer: Signer,
    ed_signer: Signer,
    foreign_ed: Signer,
) -> None:
    verifier = make_sync_verifier()
    rsa_tokens = [mint(rsa_signer, jti=f"r-{i}") for i in range(20)]
    for token in rsa_tokens:
        verifier.verify(token)
    stop = threading.Event()
    refused: list[str] = []

    def hammer() -> None:
        while not stop.is_set():
            for token in rsa_tokens:
                try:
                    verifier.verify(token)
                except InvalidToken as exc:
                    refused.append(exc.reason)

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    accepted: list[str] = []
    reasons: set[str] = set()
    try:
        jwks.keys = [ed_signer.jwk, foreign_ed.jwk]  # the RSA key is revoked
        clock.advance(30)  # past the unknown-kid cooldown, inside the JWKS lifetime
        verifier.verify(mint(foreign_ed))  # its unknown kid makes the verifier fetch
        # From here on no RSA token may pass: the next verification of each refuses it.
        for token in rsa_tokens:
            try:
                verifier.verify(token)
            except InvalidToken as exc:
                reasons.add(exc.reason)
            else:
                accepted.append(token)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    assert jwks.fetches == 2
    assert accepted == []
    assert reasons == {"no_matching_key"}
    assert set(refused) <= {"no_matching_key"}
    assert verifier.cached_tokens == 1


def test_a_verification_racing_with_the_drop_of_its_kid_is_not_remembered(
    make_sync_verifier: Callable[..., SyncVerifier],
    jwks: JWKSStub,
    mint: Minter,
    clock: FakeClock,
    rsa_signer: Signer,
    ed_signer: Signer,
    foreign_ed: Signer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The key is read, the JWKS drops it, then the signature check ends: the token was
    verified with a key that is gone, so it must not be cached as valid."""
    verifier = make_sync_verifier()
    verifier.verify(mint(ed_signer))
    racing = mint(rsa_signer)
    check = verifier_core.check_signature
    raced: list[bool] = []

    def check_while_the_key_is_revoked(*args: Any) -> None:
        if not raced:
            raced.append(True)
            jwks.keys = [ed_signer.jwk, foreign_ed.jwk]
            clock.advance(30)
            verifier.verify(mint(foreign_ed))  # another request learns of the revocation
        check(*args)

    monkeypatch.setattr(verifier_core, "check_signature", check_while_the_key_is_revoked)
    verifier.verify(racing)  # in flight when the key went: it passes, once
    assert raced == [True]
    assert jwks.fetches == 2
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(racing)
    assert caught.value.reason == "no_matching_key"
