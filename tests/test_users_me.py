"""GET /users/me: the signed-in user, as the classic FastAPI tutorial returns it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jwt
import pytest

from tests.support import AppHarness


@pytest.fixture(params=["RS256", "EdDSA"])
async def any_alg(request: pytest.FixtureRequest, harness_factory: Callable[..., Any]) -> AppHarness:
    return await harness_factory(signing_alg=request.param)  # type: ignore[no-any-return]


async def test_me_returns_the_tutorial_fields(any_alg: AppHarness) -> None:
    await any_alg.add_user()
    body = (await any_alg.login()).json()
    assert jwt.get_unverified_header(body["access_token"])["alg"] == any_alg.settings.signing_alg
    response = await any_alg.me(body["access_token"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {
        "username": "alice",
        "email": "alice@example.com",
        "full_name": "Alice Example",
        "disabled": False,
    }


async def test_me_without_email_and_full_name(harness: AppHarness) -> None:
    await harness.add_user("bob", "pw", email=None, full_name=None)
    token = (await harness.login("bob", "pw")).json()["access_token"]
    assert (await harness.me(token)).json() == {
        "username": "bob",
        "email": None,
        "full_name": None,
        "disabled": False,
    }


async def test_me_is_the_tokens_user(harness: AppHarness) -> None:
    await harness.add_user("alice")
    await harness.add_user("bob", "bob pw", email="bob@example.com", full_name="Bob")
    alice = (await harness.login("alice")).json()["access_token"]
    bob = (await harness.login("bob", "bob pw")).json()["access_token"]
    assert (await harness.me(alice)).json()["username"] == "alice"
    assert (await harness.me(bob)).json()["username"] == "bob"


async def test_me_needs_no_scope(harness: AppHarness) -> None:
    await harness.add_user(scopes="read")
    token = (await harness.login(scope="read")).json()["access_token"]
    assert (await harness.me(token)).status_code == 200


async def test_me_works_for_a_user_without_scopes(harness: AppHarness) -> None:
    await harness.add_user(scopes="")
    response = await harness.login()
    assert response.status_code == 200
    assert (await harness.me(response.json()["access_token"])).status_code == 200


async def test_me_works_after_refresh(any_alg: AppHarness) -> None:
    await any_alg.add_user()
    body = (await any_alg.login()).json()
    body = (await any_alg.refresh(body["refresh_token"])).json()
    assert (await any_alg.me(body["access_token"])).json()["username"] == "alice"


async def test_disabled_user_is_refused(any_alg: AppHarness) -> None:
    await any_alg.add_user()
    token = (await any_alg.login()).json()["access_token"]
    await any_alg.services.users.set_disabled("alice", True, any_alg.clock.now())
    response = await any_alg.me(token)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.json()["error"] == "invalid_token"


async def test_disabled_user_cannot_refresh_into_me(harness: AppHarness) -> None:
    await harness.add_user()
    body = (await harness.login()).json()
    await harness.services.users.set_disabled("alice", True, harness.clock.now())
    refreshed = await harness.refresh(body["refresh_token"])
    if refreshed.status_code == 200:  # the session may outlive the flag; /users/me may not
        assert (await harness.me(refreshed.json()["access_token"])).status_code == 401
    else:
        assert refreshed.json()["error"] == "invalid_grant"


async def test_revoked_session_is_refused_at_once(harness: AppHarness) -> None:
    await harness.add_user()
    body = (await harness.login()).json()
    sid = jwt.decode(body["access_token"], options={"verify_signature": False})["sid"]
    assert (await harness.me(body["access_token"])).status_code == 200
    assert await harness.services.session_store.revoke(sid, harness.clock.now(), "logout")
    assert (await harness.me(body["access_token"])).status_code == 401


async def test_me_only_answers_get(harness: AppHarness) -> None:
    await harness.add_user()
    token = (await harness.login()).json()["access_token"]
    response = await harness.client.post("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 405
