"""JWKS caching with a mock endpoint and a fake clock: lifetime, revalidation,
single-flight, unknown-kid cooldown, stale-if-error and back-off."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from verifier_support import AUDIENCE, ISSUER, FakeClock, JWKSStub, Minter, Signer

from authsvc.verifier import InvalidToken, Verifier


async def reason_of(verifier: Verifier, token: str) -> str:
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    return caught.value.reason


async def test_max_age_respected(verifier: Verifier, jwks: JWKSStub, mint: Minter, clock: FakeClock) -> None:
    jwks.cache_control = "public, max-age=120"
    await verifier.verify(mint())
    assert jwks.fetches == 1
    clock.advance(119)
    await verifier.verify(mint())
    assert jwks.fetches == 1
    clock.advance(1)
    await verifier.verify(mint())
    assert jwks.fetches == 2
    assert jwks.requests[0].url == httpx.URL(ISSUER + "/.well-known/jwks.json")


async def test_age_is_subtracted(verifier: Verifier, jwks: JWKSStub, mint: Minter, clock: FakeClock) -> None:
    jwks.cache_control, jwks.age = "max-age=120", "100"
    await verifier.verify(mint())
    clock.advance(19)
    await verifier.verify(mint())
    assert jwks.fetches == 1
    clock.advance(1)
    await verifier.verify(mint())
    assert jwks.fetches == 2


@pytest.mark.parametrize(
    ("cache_control", "age", "kwargs", "lifetime"),
    [
        ("max-age=3600", None, {"max_cache": 60}, 60),
        ("max-age=0", None, {"min_cache": 10}, 10),
        ("max-age=30", "100", {"min_cache": 5}, 5),
        ("max-age=30", "100", {}, 1),
        (None, None, {}, 300),
        (None, None, {"max_cache": 100}, 100),
        ("public", None, {}, 300),
        ("no-store", None, {"min_cache": 7}, 7),
        ("no-cache, max-age=600", None, {"min_cache": 7}, 7),
        ("max-age=bogus", None, {}, 300),
    ],
)
async def test_lifetime_rules(
    make_verifier: Callable[..., Verifier],
    jwks: JWKSStub,
    mint: Minter,
    clock: FakeClock,
    cache_control: str | None,
    age: str | None,
    kwargs: dict[str, float],
    lifetime: float,
) -> None:
    jwks.cache_control, jwks.age = cache_control, age
    verifier = make_verifier(**kwargs)
    token = mint()
    await verifier.verify(token)
    clock.advance(lifetime - 0.5)
    await verifier.verify(token)
    assert jwks.fetches == 1
    clock.advance(0.5)
    await verifier.verify(token)
    assert jwks.fetches == 2


async def test_if_none_match_304_keeps_keys_and_renews_lifetime(
    verifier: Verifier, jwks: JWKSStub, mint: Minter, clock: FakeClock
) -> None:
    jwks.cache_control = "max-age=60"
    await verifier.verify(mint())
    assert "if-none-match" not in jwks.requests[0].headers
    clock.advance(60)
    await verifier.verify(mint())
    assert jwks.requests[1].headers["if-none-match"] == jwks.etag
    assert jwks.not_modified == 1
    # The 304's own Cache-Control sets the renewed lifetime.
    jwks.cache_control = "max-age=10"
    clock.advance(60)
    await verifier.verify(mint())
    assert jwks.fetches == 3
    clock.advance(9)
    await verifier.verify(mint())
    assert jwks.fetches == 3
    clock.advance(1)
    await verifier.verify(mint())
    assert (jwks.fetches, jwks.not_modified) == (4, 3)


async def test_changed_etag_replaces_keys(
    verifier: Verifier, jwks: JWKSStub, mint: Minter, clock: FakeClock, rsa_signer: Signer, ed_signer: Signer
) -> None:
    await verifier.verify(mint(rsa_signer))
    jwks.keys = [ed_signer.jwk]  # the RSA key was revoked
    clock.advance(300)
    await verifier.verify(mint(ed_signer))
    assert jwks.not_modified == 0
    assert await reason_of(verifier, mint(rsa_signer)) == "no_matching_key"


async def test_without_etag_no_conditional_request(
    verifier: Verifier, jwks: JWKSStub, mint: Minter, clock: FakeClock
) -> None:
    jwks.use_etag = False
    await verifier.verify(mint())
    clock.advance(300)
    await verifier.verify(mint())
    assert all("if-none-match" not in r.headers for r in jwks.requests)


async def test_single_flight_on_cold_cache(verifier: Verifier, jwks: JWKSStub, mint: Minter) -> None:
    jwks.hold()
    token = mint()
    tasks = [asyncio.create_task(verifier.verify(token)) for _ in range(50)]
    for _ in range(5):
        await asyncio.sleep(0)  # let every task reach the fetch
    assert jwks.fetches == 0  # the one request is parked at the gate
    jwks.release()
    results = await asyncio.gather(*tasks)
    assert jwks.fetches == 1
    assert all(claims["sub"] == "user-7f3a" for claims in results)


async def test_single_flight_on_expiry(
    verifier: Verifier, jwks: JWKSStub, mint: Minter, clock: FakeClock
) -> None:
    token = mint()
    await verifier.verify(token)
    clock.advance(300)
    jwks.hold()
    tasks = [asyncio.create_task(verifier.verify(token)) for _ in range(50)]
    await asyncio.sleep(0)
    jwks.release()
    await asyncio.gather(*tasks)
    assert jwks.fetches == 2


async def test_failure_is_shared_too(verifier: Verifier, jwks: JWKSStub, mint: Minter) -> None:
    jwks.mode = "down"
    token = mint()
    results = await asyncio.gather(*(verifier.verify(token) for _ in range(50)), return_exceptions=True)
    assert jwks.fetches == 1
    assert all(isinstance(r, InvalidToken) and r.reason == "jwks_unavailable" for r in results)


async def test_unknown_kid_cooldown(
    make_verifier: Callable[..., Verifier],
    jwks: JWKSStub,
    mint: Minter,
    clock: FakeClock,
    rsa_signer: Signer,
    foreign_ed: Signer,
) -> None:
    jwks.cache_control = "max-age=3600"
    verifier = make_verifier(unknown_kid_cooldown=30)
    await verifier.verify(mint(rsa_signer))
    assert jwks.fetches == 1

    # A new key appears in the JWKS; tokens signed by it arrive at once.
    jwks.keys = [*jwks.keys, foreign_ed.jwk]
    clock.advance(1)
    assert await reason_of(verifier, mint(foreign_ed)) == "no_matching_key"
    assert jwks.fetches == 1  # still cooling down after the first fetch
    clock.advance(29)
    await verifier.verify(mint(foreign_ed))
    assert jwks.fetches == 2

    # A burst of random kids within one cooldown: at most one fetch.
    clock.advance(30)
    results = await asyncio.gather(
        *(verifier.verify(mint(header={"kid": f"kid-{i}"})) for i in range(100)), return_exceptions=True
    )
    assert all(isinstance(r, InvalidToken) and r.reason == "no_matching_key" for r in results)
    assert jwks.fetches == 3
    for i in range(100):
        clock.advance(0.2)
        assert await reason_of(verifier, mint(header={"kid": f"again-{i}"})) == "no_matching_key"
    assert jwks.fetches == 3
    # Known kids never trigger the cooldown fetch.
    await verifier.verify(mint(rsa_signer))
    assert jwks.fetches == 3


@pytest.mark.parametrize("mode", ["down", "500", "garbage"])
async def test_stale_if_error(
    make_verifier: Callable[..., Verifier],
    jwks: JWKSStub,
    mint: Minter,
    clock: FakeClock,
    mode: str,
) -> None:
    jwks.cache_control = "max-age=300"
    verifier = make_verifier(stale_if_error=3600)
    await verifier.verify(mint())
    jwks.mode = mode

    clock.advance(300)
    await verifier.verify(mint())  # refetch fails, cached keys still verify
    assert jwks.fetches == 2
    for _ in range(100):  # no retry storm while failing
        await verifier.verify(mint())
    assert jwks.fetches == 2

    clock.advance(3600 - 1)
    await verifier.verify(mint())
    assert jwks.fetches == 3

    clock.advance(1)  # now 300 + 3600 after the last good fetch
    assert await reason_of(verifier, mint()) == "jwks_unavailable"


async def test_recovers_after_outage(
    verifier: Verifier, jwks: JWKSStub, mint: Minter, clock: FakeClock, ed_signer: Signer
) -> None:
    await verifier.verify(mint())
    jwks.mode = "down"
    clock.advance(300)
    await verifier.verify(mint())
    jwks.mode = "ok"
    jwks.keys = [ed_signer.jwk]
    clock.advance(1)  # first back-off step
    await verifier.verify(mint(ed_signer))
    assert jwks.fetches == 3
    clock.advance(299)
    await verifier.verify(mint(ed_signer))
    assert jwks.fetches == 3


async def test_cold_start_failure_backs_off(
    verifier: Verifier, jwks: JWKSStub, mint: Minter, clock: FakeClock
) -> None:
    jwks.mode = "down"
    token = mint()
    for _ in range(20):
        assert await reason_of(verifier, token) == "jwks_unavailable"
    assert jwks.fetches == 1
    for _ in range(200):  # 200 s of requests at 1 per second
        clock.advance(1)
        assert await reason_of(verifier, token) == "jwks_unavailable"
    assert jwks.fetches <= 12  # 1, 2, 4, 8, 16, then one per 30 s cooldown
    jwks.mode = "ok"
    clock.advance(30)
    await verifier.verify(token)


async def test_unusable_responses(mint: Minter, clock: FakeClock, rsa_signer: Signer) -> None:
    bodies = {
        "/redirect": httpx.Response(302, headers={"Location": "https://evil.test/jwks.json"}),
        "/huge": httpx.Response(200, content=b'{"keys": [' + b" " * (2 * 1024 * 1024) + b"]}"),
        "/not-object": httpx.Response(200, json=[rsa_signer.jwk]),
        "/no-keys": httpx.Response(200, json={"kes": [rsa_signer.jwk]}),
        "/304-cold": httpx.Response(304),
    }
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return bodies[request.url.path]

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        for path in bodies:
            verifier = Verifier(ISSUER, AUDIENCE, jwks_url=ISSUER + path, http=client, clock=clock)
            assert await reason_of(verifier, mint()) == "jwks_unavailable", path
    assert calls == list(bodies)  # redirects are not followed


async def test_jwks_filters_keys(
    make_verifier: Callable[..., Verifier],
    jwks: JWKSStub,
    mint: Minter,
    rsa_signer: Signer,
    ed_signer: Signer,
    ec_signer: Signer,
) -> None:
    jwks.keys = [
        {**rsa_signer.jwk, "use": "enc"},
        {**ed_signer.jwk, "kid": None},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
        {**ec_signer.jwk, "alg": "RS256"},
        "not a key",
    ]
    verifier = make_verifier()
    assert await reason_of(verifier, mint(rsa_signer)) == "no_matching_key"
    assert await reason_of(verifier, mint(ec_signer)) == "no_matching_key"
    assert await reason_of(verifier, mint(ed_signer)) == "no_matching_key"


def test_verifier_usable_from_several_event_loops(jwks: JWKSStub, mint: Minter, clock: FakeClock) -> None:
    """A verifier made outside any loop keeps working under successive asyncio.run calls."""
    jwks.cache_control = "max-age=1"
    client = jwks.async_client()
    verifier = Verifier(ISSUER, AUDIENCE, clock=clock, http=client)

    async def burst() -> None:
        await asyncio.gather(*(verifier.verify(mint()) for _ in range(5)))

    for _ in range(3):
        asyncio.run(burst())
        clock.advance(1)
    asyncio.run(client.aclose())
    assert jwks.fetches == 3
