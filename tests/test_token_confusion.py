"""Tokens used where they do not belong, and credentials where they must not be read."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support import AppHarness


def assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="authsvc"')
    assert 'error="invalid_token"' in challenge
    assert response.json()["error"] == "invalid_token"


def assert_bare_challenge(response: httpx.Response) -> None:
    """No credentials presented: RFC 6750 §3.1, a challenge without an error attribute."""
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == 'Bearer realm="authsvc"'


def _b64(data: Any) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
async def tokens(harness: AppHarness) -> dict[str, Any]:
    await harness.add_user()
    response = await harness.login()
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


async def test_refresh_token_as_bearer_is_invalid_token(harness: AppHarness, tokens: dict[str, Any]) -> None:
    assert_invalid_token(await harness.me(tokens["refresh_token"]))


async def test_access_token_as_refresh_token_is_invalid_grant(
    harness: AppHarness, tokens: dict[str, Any]
) -> None:
    response = await harness.refresh(tokens["access_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    # and the session it belongs to is untouched
    assert (await harness.refresh(tokens["refresh_token"])).status_code == 200


async def test_access_token_in_the_query_string_is_not_read(
    harness: AppHarness, tokens: dict[str, Any]
) -> None:
    response = await harness.client.get("/users/me", params={"access_token": tokens["access_token"]})
    assert_bare_challenge(response)


async def test_access_token_in_a_form_body_is_not_read(harness: AppHarness, tokens: dict[str, Any]) -> None:
    response = await harness.client.request("GET", "/users/me", data={"access_token": tokens["access_token"]})
    assert_bare_challenge(response)


async def test_access_token_in_a_cookie_is_not_read(harness: AppHarness, tokens: dict[str, Any]) -> None:
    response = await harness.client.get(
        "/users/me", headers={"Cookie": f"access_token={tokens['access_token']}"}
    )
    assert_bare_challenge(response)


async def test_no_authorization_is_a_bare_challenge(harness: AppHarness) -> None:
    response = await harness.client.get("/users/me")
    assert_bare_challenge(response)
    assert "error=" not in response.headers["www-authenticate"]
    assert response.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        # No Bearer credentials at all (another scheme, no scheme): 401 with a bare challenge.
        ("Basic " + base64.b64encode(b"alice:correct horse").decode(), 401),
        ("Digest username=alice", 401),
        ("Token {token}", 401),
        ("MAC {token}", 401),
        # (DPoP is a scheme of its own since RFC 9449 support: tests/test_dpop_*.py.)
        ("{token}", 401),
        # A malformed Bearer request: 400 invalid_request (RFC 6750 §3.1), as authsvc.verifier answers.
        ("Bearer", 400),
        ("Bearer ", 400),
        ("Bearer  ", 400),
        # A Bearer credential that is not a token of ours: 401 invalid_token.
        ("Bearer {token} extra", 401),
        ("Bearer {token},Bearer {token}", 401),
    ],
)
async def test_other_schemes_and_shapes_are_refused(
    harness: AppHarness, tokens: dict[str, Any], authorization: str, status: int
) -> None:
    value = authorization.format(token=tokens["access_token"])
    response = await harness.client.get("/users/me", headers={"Authorization": value})
    assert response.status_code == status
    assert response.headers["www-authenticate"].startswith('Bearer realm="authsvc"')


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_bearer_scheme_is_case_insensitive(
    harness: AppHarness, tokens: dict[str, Any], scheme: str
) -> None:
    response = await harness.client.get(
        "/users/me", headers={"Authorization": f"{scheme} {tokens['access_token']}"}
    )
    assert response.status_code == 200


async def test_tampered_access_token_is_invalid_token(harness: AppHarness, tokens: dict[str, Any]) -> None:
    header, payload, signature = tokens["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = {**claims, "sub": "u_someone_else"}
    assert_invalid_token(await harness.me(f"{header}.{_b64(forged)}.{signature}"))
    flipped = signature[:5] + ("A" if signature[5] != "A" else "B") + signature[6:]
    assert_invalid_token(await harness.me(f"{header}.{payload}.{flipped}"))
    assert_invalid_token(await harness.me(f"{header}.{payload}."))


async def test_unsigned_and_hmac_tokens_are_invalid_token(
    harness: AppHarness, tokens: dict[str, Any]
) -> None:
    header_b64, payload, _sig = tokens["access_token"].split(".")
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
    none = _b64({**header, "alg": "none"})
    assert_invalid_token(await harness.me(f"{none}.{payload}."))
    hs = _b64({**header, "alg": "HS256"})
    assert_invalid_token(await harness.me(f"{hs}.{payload}.{_b64(b'x' * 32)}"))


async def test_access_token_with_retyped_header_is_invalid_token(
    harness: AppHarness, tokens: dict[str, Any]
) -> None:
    """Changing typ breaks the signature; a refresh token re-typed is still refused."""
    header_b64, payload, signature = tokens["refresh_token"].split(".")
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
    retyped = _b64({**header, "typ": "at+jwt"})
    assert_invalid_token(await harness.me(f"{retyped}.{payload}.{signature}"))


async def test_kid_is_never_a_path(harness: AppHarness, tokens: dict[str, Any]) -> None:
    header_b64, payload, signature = tokens["access_token"].split(".")
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
    for kid in ("../keyset", "../../etc/passwd", "keyset.json", "", "\x00"):
        forged = _b64({**header, "kid": kid})
        assert_invalid_token(await harness.me(f"{forged}.{payload}.{signature}"))


async def test_token_signed_by_another_key_set_is_invalid_token(
    harness_factory: Callable[..., Any], tmp_path: Any
) -> None:
    """Same issuer, same database, a different key store: its tokens are not ours."""
    ours: AppHarness = await harness_factory()
    theirs: AppHarness = await harness_factory(keys_dir=tmp_path / "other-keys")
    await ours.add_user()
    foreign = (await theirs.login()).json()
    assert_invalid_token(await ours.me(foreign["access_token"]))
    response = await ours.refresh(foreign["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_token_for_another_issuer_is_invalid_token(
    harness_factory: Callable[..., Any],
) -> None:
    """Same key store, another issuer: the ``iss`` check refuses it."""
    ours: AppHarness = await harness_factory()
    other: AppHarness = await harness_factory(issuer="https://other.example")
    await ours.add_user()
    foreign = (await other.login()).json()
    assert_invalid_token(await ours.me(foreign["access_token"]))
    assert (await ours.refresh(foreign["refresh_token"])).json()["error"] == "invalid_grant"


async def test_token_for_another_audience_is_invalid_token(
    harness_factory: Callable[..., Any],
) -> None:
    ours: AppHarness = await harness_factory()
    other: AppHarness = await harness_factory(default_audience="billing")
    await ours.add_user()
    foreign = (await other.login()).json()
    assert_invalid_token(await ours.me(foreign["access_token"]))
