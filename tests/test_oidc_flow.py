"""The browser flow's rules through the ASGI app: prompt and max_age, codes bound to what they
were issued for, credentials changing under a sign-in, logout, PAR, CORS, userinfo and the
ID token, and the consents command."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import pytest

from tests.authorize_support import (
    LOGOUT_TARGET,
    REDIRECT,
    add_browser_client,
    authorize_params,
    browser_tokens,
    callback,
    form_of,
    pkce,
    redeem,
    sign_in,
)
from tests.support import ISSUER, AppHarness, claims_of, run_cli, server_env


@pytest.fixture
async def browser(harness: AppHarness) -> AppHarness:
    await harness.add_user(scopes="read")
    await add_browser_client(harness, "spa", first_party=True, web_origins=("https://spa.example",))
    await add_browser_client(harness, "third", first_party=False)
    return harness


async def test_prompt_none_without_a_session_is_login_required(browser: AppHarness) -> None:
    answer = await browser.client.get("/authorize", params=authorize_params("spa", pkce()[1], prompt="none"))
    got = callback(answer)
    assert got == {
        "error": "login_required",
        "error_description": got["error_description"],
        "state": "st-1",
        "iss": ISSUER,
    }


async def test_prompt_login_and_max_age_ask_again(browser: AppHarness) -> None:
    await browser_tokens(browser)
    challenge = pkce()[1]
    assert "code" in callback(
        await browser.client.get("/authorize", params=authorize_params("spa", challenge))
    )
    again = await browser.client.get("/authorize", params=authorize_params("spa", challenge, prompt="login"))
    assert again.status_code == 200 and 'name="password"' in again.text
    browser.clock.advance(30)
    fresh = await browser.client.get("/authorize", params=authorize_params("spa", challenge, max_age="60"))
    assert "code" in callback(fresh)
    stale = await browser.client.get("/authorize", params=authorize_params("spa", challenge, max_age="10"))
    assert stale.status_code == 200 and 'name="password"' in stale.text


async def test_the_code_is_bound_to_its_verifier_client_uri_and_lifetime(browser: AppHarness) -> None:
    verifier, challenge = pkce()
    code = callback(await sign_in(browser, "spa", challenge))["code"]
    wrong = await redeem(browser, "spa", code, pkce()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    # The failed attempt used the code up: the right verifier is too late now.
    assert (await redeem(browser, "spa", code, verifier)).json()["error"] == "invalid_grant"
    for tamper in ({"client_id": "third"}, {"redirect_uri": REDIRECT + "x"}):
        verifier, challenge = pkce()
        code = callback(await browser.client.get("/authorize", params=authorize_params("spa", challenge)))[
            "code"
        ]
        answer = await redeem(browser, "spa", code, verifier, **tamper)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant", tamper
    verifier, challenge = pkce()
    code = callback(await browser.client.get("/authorize", params=authorize_params("spa", challenge)))["code"]
    browser.clock.advance(browser.settings.auth_code_ttl + 1)
    assert (await redeem(browser, "spa", code, verifier)).json()["error"] == "invalid_grant"


async def test_pkce_is_required_and_plain_refused(browser: AppHarness) -> None:
    for extra in ({"code_challenge_method": "plain"}, {"code_challenge": "short"}):
        answer = await browser.client.get("/authorize", params=authorize_params("spa", pkce()[1], **extra))
        assert callback(answer)["error"] == "invalid_request", extra
    params = authorize_params("spa", "x")
    del params["code_challenge"], params["code_challenge_method"]
    assert callback(await browser.client.get("/authorize", params=params))["error"] == "invalid_request"


async def test_untrusted_requests_get_a_page_not_a_redirect(browser: AppHarness) -> None:
    for extra in (
        {"client_id": "nobody"},
        {"redirect_uri": "https://evil.example/cb"},
        {"redirect_uri": REDIRECT + "/"},
    ):
        answer = await browser.client.get("/authorize", params=authorize_params("spa", pkce()[1], **extra))
        assert answer.status_code == 400, extra
        assert "location" not in answer.headers
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    loopback = REDIRECT.replace("127.0.0.1", "127.0.0.1:61234")
    answer = await browser.client.get(
        "/authorize", params=authorize_params("spa", pkce()[1], redirect_uri=loopback)
    )
    assert answer.status_code == 200  # RFC 8252 §7.3: loopback on any port


async def test_a_password_change_ends_the_browser_session_and_its_codes(browser: AppHarness) -> None:
    verifier, challenge = pkce()
    code = callback(await sign_in(browser, "spa", challenge))["code"]
    user = await browser.services.users.by_username("alice")
    await browser.services.users.change_credentials(
        user.id, browser.clock.now(), "password", password_hash="x"
    )
    assert (await redeem(browser, "spa", code, verifier)).json()["error"] == "invalid_grant"
    page = await browser.client.get("/authorize", params=authorize_params("spa", challenge))
    assert page.status_code == 200 and 'name="password"' in page.text


async def test_consent_deny_is_access_denied_and_allow_is_remembered(browser: AppHarness) -> None:
    await browser_tokens(browser)
    page = await browser.client.get("/authorize", params=authorize_params("third", pkce()[1]))
    assert 'value="deny"' in page.text
    denied = await browser.client.post("/authorize", data={**form_of(page).hidden, "consent": "deny"})
    assert callback(denied)["error"] == "access_denied"
    assert callback(denied)["iss"] == ISSUER
    page = await browser.client.get("/authorize", params=authorize_params("third", pkce()[1]))
    assert "code" in callback(
        await browser.client.post("/authorize", data={**form_of(page).hidden, "consent": "allow"})
    )
    # A scope not consented yet asks again; prompt=none then says so.
    wider = await browser.client.get(
        "/authorize", params=authorize_params("third", pkce()[1], scope="openid email", prompt="none")
    )
    assert callback(wider)["error"] == "consent_required"


async def test_consent_cannot_be_given_by_another_browser(browser: AppHarness) -> None:
    await browser_tokens(browser)
    page = await browser.client.get("/authorize", params=authorize_params("third", pkce()[1]))
    hidden = form_of(page).hidden
    browser.client.cookies.delete("authsvc_session")
    answer = await browser.client.post("/authorize", data={**hidden, "consent": "allow"})
    assert answer.status_code == 400 and "location" not in answer.headers


async def test_csrf_token_and_cookie_are_both_needed(browser: AppHarness) -> None:
    page = await browser.client.get("/authorize", params=authorize_params("spa", pkce()[1]))
    hidden = form_of(page).hidden
    login = {"username": "alice", "password": "correct horse"}
    assert (
        await browser.client.post("/authorize", data={"interaction": hidden["interaction"], **login})
    ).status_code == 403
    binding = browser.client.cookies.get("authsvc_csrf")
    browser.client.cookies.delete("authsvc_csrf")
    assert (await browser.client.post("/authorize", data={**hidden, **login})).status_code == 403
    browser.client.cookies.set("authsvc_csrf", "another browser")
    assert (await browser.client.post("/authorize", data={**hidden, **login})).status_code == 403
    browser.client.cookies.set("authsvc_csrf", binding)
    assert (await browser.client.post("/authorize", data={**hidden, **login})).status_code == 303


async def test_id_token_userinfo_and_no_refresh_without_the_grant(browser: AppHarness) -> None:
    await add_browser_client(browser, "norefresh", first_party=True, refresh=False)
    tokens = await browser_tokens(browser, "norefresh", scope="openid profile email", nonce="abc")
    assert "refresh_token" not in tokens
    header = _header(tokens["id_token"])
    assert header["typ"] == "JWT"
    claims = claims_of(tokens["id_token"])
    assert claims["iss"] == ISSUER and claims["aud"] == "norefresh" and claims["nonce"] == "abc"
    assert claims["sub"] == claims_of(tokens["access_token"])["sub"]
    digest = hashlib.sha256(tokens["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    info = await browser.client.get(
        "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}
    )
    assert info.status_code == 200
    assert info.json() == {
        "sub": claims["sub"],
        "preferred_username": "alice",
        "name": "Alice Example",
        "email": "alice@example.com",
        "email_verified": False,
    }
    assert info.headers["cache-control"] == "no-store"
    narrow = await browser_tokens(browser, "norefresh", scope="read")
    assert "id_token" not in narrow
    refused = await browser.client.get(
        "/userinfo", headers={"Authorization": "Bearer " + narrow["access_token"]}
    )
    assert refused.status_code == 403
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]


async def test_eddsa_at_hash_is_the_left_half_of_sha512(harness_factory: Any) -> None:
    harness: AppHarness = await harness_factory(signing_alg="EdDSA")
    await harness.add_user()
    await add_browser_client(harness, "spa", first_party=True)
    tokens = await browser_tokens(harness, scope="openid")
    digest = hashlib.sha512(tokens["access_token"].encode()).digest()
    assert (
        claims_of(tokens["id_token"])["at_hash"]
        == base64.urlsafe_b64encode(digest[:32]).rstrip(b"=").decode()
    )
    assert _header(tokens["id_token"])["alg"] == "EdDSA"


async def test_logout_with_a_hint_ends_the_session_and_its_families(browser: AppHarness) -> None:
    tokens = await browser_tokens(browser, scope="openid read")
    answer = await browser.client.get(
        "/logout",
        params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": LOGOUT_TARGET,
            "state": "bye",
        },
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == LOGOUT_TARGET + "?state=bye"
    assert (await browser.refresh(tokens["refresh_token"], client_id="spa")).json()[
        "error"
    ] == "invalid_grant"
    assert (await browser.me(tokens["access_token"])).status_code == 401
    page = await browser.client.get("/authorize", params=authorize_params("spa", pkce()[1]))
    assert page.status_code == 200 and 'name="password"' in page.text


async def test_logout_refuses_unregistered_targets_and_confirms_without_a_hint(browser: AppHarness) -> None:
    tokens = await browser_tokens(browser, scope="openid")
    evil = await browser.client.get(
        "/logout",
        params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://evil.example/"},
    )
    assert evil.status_code == 400 and "location" not in evil.headers
    confirm = await browser.client.get(
        "/logout", params={"client_id": "spa", "post_logout_redirect_uri": LOGOUT_TARGET}
    )
    assert confirm.status_code == 200 and 'value="yes"' in confirm.text
    # Still signed in until the form is posted.
    assert "code" in callback(
        await browser.client.get("/authorize", params=authorize_params("spa", pkce()[1]))
    )
    assert (await browser.client.post("/logout", data={"logout": "yes"})).status_code == 403
    done = await browser.client.post("/logout", data={**form_of(confirm).hidden, "logout": "yes"})
    assert done.status_code == 303 and done.headers["location"] == LOGOUT_TARGET
    assert (await browser.refresh(tokens["refresh_token"], client_id="spa")).json()[
        "error"
    ] == "invalid_grant"


async def test_pushed_requests_are_single_use_and_can_be_required(browser: AppHarness) -> None:
    await add_browser_client(browser, "parred", first_party=True, require_par=True)
    verifier, challenge = pkce()
    pushed = await browser.client.post("/par", data=authorize_params("parred", challenge))
    assert pushed.status_code == 201, pushed.text
    body = pushed.json()
    assert body["expires_in"] == 60 and body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    params = {"client_id": "parred", "request_uri": body["request_uri"]}
    page = await browser.client.get("/authorize", params=params)
    assert page.status_code == 200
    done = await browser.client.post(
        "/authorize", data={**form_of(page).hidden, "username": "alice", "password": "correct horse"}
    )
    assert (
        await redeem(browser, "parred", callback(done)["code"], verifier, client_id="parred")
    ).status_code == 200
    reused = await browser.client.get("/authorize", params=params)
    assert reused.status_code == 400 and "location" not in reused.headers
    direct = await browser.client.get("/authorize", params=authorize_params("parred", challenge))
    assert callback(direct)["error"] == "invalid_request"
    refused = await browser.client.post(
        "/par", data=authorize_params("parred", challenge, code_challenge_method="plain")
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_request"


async def test_cors_for_registered_origins_only(browser: AppHarness) -> None:
    ok = {"Origin": "https://spa.example", "Access-Control-Request-Method": "POST"}
    preflight = await browser.client.options("/token", headers=ok)
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://spa.example"
    assert "DPoP" in preflight.headers["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in preflight.headers
    other = await browser.client.options("/token", headers={**ok, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    answer = await browser.client.post(
        "/token", data={"grant_type": "x"}, headers={"Origin": "https://spa.example"}
    )
    assert answer.headers["access-control-allow-origin"] == "https://spa.example"
    jwks = await browser.client.get("/.well-known/jwks.json", headers={"Origin": "https://evil.example"})
    assert jwks.headers["access-control-allow-origin"] == "*"
    page = await browser.client.get("/authorize", headers={"Origin": "https://spa.example"})
    assert "access-control-allow-origin" not in page.headers


async def test_consents_command_lists_and_revokes(browser: AppHarness, tmp_path: Any) -> None:
    await browser_tokens(browser)
    page = await browser.client.get(
        "/authorize", params=authorize_params("third", pkce()[1], scope="openid read")
    )
    await browser.client.post("/authorize", data={**form_of(page).hidden, "consent": "allow"})
    env = server_env(tmp_path)
    env["AUTHSVC_DATABASE_URL"] = browser.settings.database_url

    def cli(*args: str) -> Any:
        return run_cli(*args, env=env)

    listed = await asyncio.to_thread(cli, "users", "consents", "alice")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("third\tgranted ") and listed.stdout.rstrip().endswith("openid read")
    revoked = await asyncio.to_thread(cli, "users", "consents", "ALICE", "--revoke", "third")
    assert revoked.returncode == 0, revoked.stderr
    assert (await asyncio.to_thread(cli, "users", "consents", "alice")).stdout == ""
    again = await asyncio.to_thread(cli, "users", "consents", "alice", "--revoke", "third")
    assert again.returncode == 1 and "has not consented" in again.stderr
    # Forgotten: the consent page comes back.
    page = await browser.client.get(
        "/authorize", params=authorize_params("third", pkce()[1], scope="openid read")
    )
    assert 'value="allow"' in page.text


def _header(token: str) -> dict[str, Any]:
    import json

    segment = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))  # type: ignore[no-any-return]


@pytest.mark.parametrize("problem", ["missing", "broken"])
def test_serve_names_a_bad_templates_dir_in_one_line(tmp_path: Any, problem: str) -> None:
    templates = tmp_path / "templates"
    if problem == "broken":
        templates.mkdir()
        (templates / "login.html").write_text("{% if %}")
    result = run_cli("serve", "--port", "0", env=server_env(tmp_path, templates_dir=str(templates)))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("authsvc: AUTHSVC_TEMPLATES_DIR: "), result.stderr


async def test_a_replacement_login_template_is_served(harness_factory: Any, tmp_path: Any) -> None:
    templates = tmp_path / "mine"
    templates.mkdir()
    (templates / "login.html").write_text(
        '{% extends "base.html" %}{% block content %}<p>Welcome to Example Corp</p>'
        '<form method="post" action="{{ action }}">{% for name, value in hidden %}'
        '<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}'
        '<input name="username"><input name="password" type="password"></form>{% endblock %}'
    )
    harness: AppHarness = await harness_factory(templates_dir=templates)
    await harness.add_user()
    await add_browser_client(harness, "spa", first_party=True)
    page = await harness.client.get("/authorize", params=authorize_params("spa", pkce()[1]))
    assert "Welcome to Example Corp" in page.text
    done = await harness.client.post(
        "/authorize", data={**form_of(page).hidden, "username": "alice", "password": "correct horse"}
    )
    assert "code" in callback(done)
