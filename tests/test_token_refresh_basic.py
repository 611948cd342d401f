"""The refresh grant (RFC 6749 §6): rotation, scope narrowing, lifetimes.

Time moves only by ``harness.clock.advance``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jwt
import pytest

from tests.support import ISSUER, AppHarness, assert_error, claims_of

TOKEN_FIELDS = {"access_token", "token_type", "expires_in", "scope", "refresh_token"}


async def _login(harness: AppHarness, **extra: str) -> dict[str, Any]:
    await harness.add_user()
    response = await harness.login(**extra)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


# --- rotation ------------------------------------------------------------------------
async def test_refresh_returns_new_access_and_refresh_tokens(harness: AppHarness) -> None:
    first = await _login(harness)
    harness.clock.advance(5)
    response = await harness.refresh(first["refresh_token"])
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    second = response.json()
    assert set(second) == TOKEN_FIELDS
    assert second["token_type"] == "Bearer"
    assert second["scope"] == "read write"
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    a1, a2 = claims_of(first["access_token"]), claims_of(second["access_token"])
    assert a2["sid"] == a1["sid"]
    assert a2["sub"] == a1["sub"]
    assert a2["jti"] != a1["jti"]
    assert a2["iat"] == a1["iat"] + 5
    assert (await harness.me(second["access_token"])).status_code == 200


async def test_refresh_token_shape(harness: AppHarness) -> None:
    body = await _login(harness)
    token = body["refresh_token"]
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "rt+jwt"
    assert header["alg"] == "RS256"
    assert header["kid"] == jwt.get_unverified_header(body["access_token"])["kid"]
    claims = claims_of(token)
    assert {"iss", "sub", "client_id", "sid", "jti", "iat", "exp", "scope"} <= set(claims)
    assert "aud" not in claims
    assert claims["iss"] == ISSUER
    assert claims["client_id"] == "cli"
    assert claims["sid"] == claims_of(body["access_token"])["sid"]
    assert claims["exp"] == claims["iat"] + harness.settings.refresh_token_ttl


async def test_every_refresh_rotates(harness: AppHarness) -> None:
    body = await _login(harness)
    seen = {body["refresh_token"]}
    for _ in range(5):
        harness.clock.advance(1)
        response = await harness.refresh(body["refresh_token"])
        assert response.status_code == 200
        body = response.json()
        assert body["refresh_token"] not in seen
        seen.add(body["refresh_token"])


async def test_spent_refresh_token_is_invalid_grant(harness: AppHarness) -> None:
    first = await _login(harness)
    assert (await harness.refresh(first["refresh_token"])).status_code == 200
    assert_error(await harness.refresh(first["refresh_token"]), 400, "invalid_grant")


async def test_replay_revokes_the_whole_session(harness: AppHarness) -> None:
    """RFC 9700 §4.14: reuse of a spent token ends the family (grace 0 by default)."""
    first = await _login(harness)
    second = (await harness.refresh(first["refresh_token"])).json()
    assert_error(await harness.refresh(first["refresh_token"]), 400, "invalid_grant")
    assert_error(await harness.refresh(second["refresh_token"]), 400, "invalid_grant")
    me = await harness.me(second["access_token"])
    assert me.status_code == 401
    assert 'error="invalid_token"' in me.headers["www-authenticate"]


async def test_replay_leaves_other_sessions_alone(harness: AppHarness) -> None:
    first = await _login(harness)
    other = (await harness.login()).json()
    await harness.refresh(first["refresh_token"])
    await harness.refresh(first["refresh_token"])  # reuse: first session revoked
    assert (await harness.refresh(other["refresh_token"])).status_code == 200


# --- scope ------------------------------------------------------------------------------------
async def test_narrower_scope_narrows_the_access_token_only(harness: AppHarness) -> None:
    first = await _login(harness)
    narrow = await harness.refresh(first["refresh_token"], scope="read")
    assert narrow.status_code == 200
    body = narrow.json()
    assert body["scope"] == "read"
    assert claims_of(body["access_token"])["scope"] == "read"
    assert claims_of(body["refresh_token"])["scope"] == "read write"
    again = await harness.refresh(body["refresh_token"])
    assert again.status_code == 200
    assert again.json()["scope"] == "read write"
    assert claims_of(again.json()["access_token"])["scope"] == "read write"


async def test_narrowed_refresh_may_ask_the_original_scope_back(harness: AppHarness) -> None:
    first = await _login(harness)
    body = (await harness.refresh(first["refresh_token"], scope="read")).json()
    response = await harness.refresh(body["refresh_token"], scope="write read")
    assert response.status_code == 200
    assert response.json()["scope"] == "read write"


async def test_login_scope_bounds_later_refreshes(harness: AppHarness) -> None:
    first = await _login(harness, scope="read")
    assert_error(await harness.refresh(first["refresh_token"], scope="read write"), 400, "invalid_scope")


@pytest.mark.parametrize("asked", ["admin", "read admin", "read write admin"])
async def test_wider_scope_is_invalid_scope(harness: AppHarness, asked: str) -> None:
    first = await _login(harness)
    assert_error(await harness.refresh(first["refresh_token"], scope=asked), 400, "invalid_scope")


# --- lifetimes -------------------------------------------------------------------------------
async def test_access_token_expires(harness_factory: Callable[..., Any]) -> None:
    harness: AppHarness = await harness_factory(clock_skew=0, access_token_ttl=300)
    body = await _login(harness)
    assert body["expires_in"] == 300
    harness.clock.advance(299)
    assert (await harness.me(body["access_token"])).status_code == 200
    harness.clock.advance(1)
    response = await harness.me(body["access_token"])
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.headers["www-authenticate"].startswith('Bearer realm="authsvc"')
    assert response.json()["error"] == "invalid_token"


async def test_access_token_expiry_allows_the_clock_skew(harness: AppHarness) -> None:
    body = await _login(harness)
    skew = harness.settings.clock_skew
    harness.clock.advance(900 + skew - 1)
    assert (await harness.me(body["access_token"])).status_code == 200
    harness.clock.advance(1)
    assert (await harness.me(body["access_token"])).status_code == 401


@pytest.mark.parametrize("behind", [2, 5])
async def test_a_refresh_token_issued_by_a_clock_ahead_within_the_skew_is_accepted(
    harness_factory: Callable[..., Any], behind: int
) -> None:
    """Found by scripts/soak.py: an instance whose clock ran 2 s ahead (within
    AUTHSVC_CLOCK_SKEW) issued refresh tokens whose ``iat`` the other instance read as
    "issued in the future" (refresh tokens were checked with no leeway): the next refresh
    was invalid_grant and the chain broken. ``iat`` gets the skew; ``exp`` stays exact.
    """
    harness: AppHarness = await harness_factory(clock_skew=5)
    harness.clock.advance(60)  # the first key signs from its creation: keep clear of it
    body = await _login(harness)
    harness.clock.advance(-behind)  # the next request meets a server whose clock is behind
    response = await harness.refresh(body["refresh_token"])
    assert response.status_code == 200, response.text
    harness.clock.advance(-(5 + 1))  # beyond the skew: refused
    assert_error(await harness.refresh(response.json()["refresh_token"]), 400, "invalid_grant")


async def test_refresh_token_expires_after_its_idle_lifetime(harness_factory: Callable[..., Any]) -> None:
    harness: AppHarness = await harness_factory(refresh_token_ttl=100)
    body = await _login(harness)
    harness.clock.advance(100)
    assert_error(await harness.refresh(body["refresh_token"]), 400, "invalid_grant")


async def test_refresh_lifetime_slides(harness_factory: Callable[..., Any]) -> None:
    harness: AppHarness = await harness_factory(refresh_token_ttl=100)
    body = await _login(harness)
    for _ in range(4):  # 4 * 99 s: well past one idle lifetime
        harness.clock.advance(99)
        response = await harness.refresh(body["refresh_token"])
        assert response.status_code == 200
        body = response.json()
    claims = claims_of(body["refresh_token"])
    assert claims["exp"] == int(harness.clock.now()) + 100


async def test_session_absolute_limit_caps_every_token(harness_factory: Callable[..., Any]) -> None:
    harness: AppHarness = await harness_factory(
        refresh_token_ttl=100, refresh_token_max_ttl=250, access_token_ttl=60
    )
    start = int(harness.clock.now())
    body = await _login(harness)
    assert claims_of(body["refresh_token"])["exp"] == start + 100
    harness.clock.advance(90)
    body = (await harness.refresh(body["refresh_token"])).json()
    assert claims_of(body["refresh_token"])["exp"] == start + 190
    harness.clock.advance(90)  # t = 180: now + ttl would be 280 > 250
    body = (await harness.refresh(body["refresh_token"])).json()
    assert claims_of(body["refresh_token"])["exp"] == start + 250
    harness.clock.advance(30)  # t = 210: the access token (60 s) would outlive the session
    response = await harness.refresh(body["refresh_token"])
    assert response.status_code == 200
    body = response.json()
    assert claims_of(body["access_token"])["exp"] == start + 250
    assert body["expires_in"] == 40
    harness.clock.advance(40)  # t = 250: the session is over
    assert_error(await harness.refresh(body["refresh_token"]), 400, "invalid_grant")


async def test_short_session_caps_the_first_access_token(harness_factory: Callable[..., Any]) -> None:
    harness: AppHarness = await harness_factory(refresh_token_max_ttl=300, access_token_ttl=900)
    start = int(harness.clock.now())
    body = await _login(harness)
    assert body["expires_in"] == 300
    assert claims_of(body["access_token"])["exp"] == start + 300
    assert claims_of(body["refresh_token"])["exp"] == start + 300


async def test_expired_session_access_token_refused_at_me(harness_factory: Callable[..., Any]) -> None:
    harness: AppHarness = await harness_factory(refresh_token_max_ttl=100, access_token_ttl=900)
    body = await _login(harness)
    harness.clock.advance(100 + harness.settings.clock_skew)
    assert (await harness.me(body["access_token"])).status_code == 401
