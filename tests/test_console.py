"""The console through the ASGI apps: its sign-in (authsvc's own code flow with PKCE), the
state check, the 403 for a non-admin, the CSRF token on every form, the pages' actions, logout."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from authsvc.clients import CONSOLE_CLIENT_ID
from authsvc.console.timeline import draw
from authsvc.listeners import Listeners
from tests.authorize_support import form_of
from tests.support import ISSUER, AppHarness

ADMIN = "http://127.0.0.1:9001"
ROOT_PASSWORD = "root password!"


@dataclass
class Browser:
    """One cookie jar in front of both listeners (routed by port, as ``serve`` does)."""

    harness: AppHarness
    http: httpx.AsyncClient
    app: Listeners

    async def sign_in(self, username: str = "root", password: str = ROOT_PASSWORD) -> httpx.Response:
        """GET /console, the hosted login page, the callback: the answer of the callback."""
        start = await self.http.get(ADMIN + "/console")
        assert start.status_code == 303, start.text
        signed_in = await self.http.get(start.headers["location"])
        if signed_in.status_code != 303:  # no browser session at the issuer yet (else SSO)
            assert 'name="password"' in signed_in.text, signed_in.text
            form = form_of(signed_in)
            signed_in = await self.http.post(
                ISSUER + "/authorize", data={**form.hidden, "username": username, "password": password}
            )
        assert signed_in.status_code == 303, signed_in.text
        location = signed_in.headers["location"]
        assert location.startswith(ADMIN + "/console/callback?"), location
        return await self.http.get(location)

    async def csrf(self, path: str = "/console") -> str:
        page = await self.http.get(ADMIN + path)
        assert page.status_code == 200, page.text
        return form_of(page).hidden["csrf_token"]


@pytest.fixture
async def browser(harness_factory: Any) -> AsyncIterator[Browser]:
    harness: AppHarness = await harness_factory(admin_bind="127.0.0.1:9001")
    await harness.add_user("root", ROOT_PASSWORD, scopes="authsvc:admin")
    await harness.add_user("alice", scopes="read")
    app = Listeners(harness.app, harness.app.admin, 9001)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app)) as http:
        yield Browser(harness, http, app)


async def test_without_a_session_the_console_sends_the_browser_to_authorize(browser: Browser) -> None:
    answer = await browser.http.get(ADMIN + "/console")
    assert answer.status_code == 303
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == ISSUER + "/authorize"
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["client_id"] == CONSOLE_CLIENT_ID
    assert query["redirect_uri"] == ADMIN + "/console/callback"
    assert query["response_type"] == "code" and query["code_challenge_method"] == "S256"
    assert set(query["scope"].split()) == {"openid", "authsvc:admin"}
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32 and len(query["code_challenge"]) == 43
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("authsvc_console_login=") and "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower() and "Secure" not in cookie  # http loopback


async def test_an_admin_signs_in_and_sees_the_key_timeline(browser: Browser) -> None:
    done = await browser.sign_in()
    assert done.status_code == 303 and done.headers["location"] == "/console"
    cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("authsvc_console="))
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    page = await browser.http.get(ADMIN + "/console")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script" not in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    assert "<script" not in page.text
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in page.text and 'role="img"' in page.text
    assert '<title id="tl-title">Key timeline</title>' in page.text
    view = await _admin_view(browser)
    assert all(key["kid"] in page.text for key in view["keys"])
    assert "Signed in as <strong>root</strong>" in page.text
    assert "max-age=" in page.text
    # The access token never reaches the browser.
    assert all("eyJ" not in c.value for c in browser.http.cookies.jar)


async def test_the_callback_checks_state_and_issuer(browser: Browser) -> None:
    start = await browser.http.get(ADMIN + "/console")
    query = {k: v[0] for k, v in parse_qs(urlsplit(start.headers["location"]).query).items()}
    forged = await browser.http.get(
        ADMIN + "/console/callback", params={"code": "x", "state": "forged", "iss": ISSUER}
    )
    assert forged.status_code == 400 and "Sign-in failed" in forged.text
    wrong_iss = await browser.http.get(
        ADMIN + "/console/callback", params={"code": "x", "state": query["state"], "iss": "http://evil"}
    )
    assert wrong_iss.status_code == 400
    browser.http.cookies.clear()
    no_cookie = await browser.http.get(
        ADMIN + "/console/callback", params={"code": "x", "state": query["state"], "iss": ISSUER}
    )
    assert no_cookie.status_code == 400
    assert (await browser.http.get(ADMIN + "/console")).status_code == 303  # still signed out


async def test_a_user_without_authsvc_admin_gets_a_403_page(browser: Browser) -> None:
    answer = await browser.sign_in("alice", "correct horse")
    assert answer.status_code == 403
    assert "Not an administrator" in answer.text and "/console/login" in answer.text
    assert (await browser.http.get(ADMIN + "/console")).status_code == 303
    again = await browser.http.get(ADMIN + "/console/login")  # asks for a password again
    assert "prompt=login" in again.headers["location"]


async def test_every_form_needs_the_sessions_csrf_token(browser: Browser) -> None:
    await browser.sign_in()
    before = (await browser.http.get(ADMIN + "/console")).text.count("Revoke…")
    for data in ({}, {"csrf_token": "forged"}):
        refused = await browser.http.post(ADMIN + "/console/keys/rotate", data=data)
        assert refused.status_code == 403 and "Nothing was changed" in refused.text
    assert (await browser.http.get(ADMIN + "/console")).text.count("Revoke…") == before
    token = await browser.csrf()
    rotated = await browser.http.post(ADMIN + "/console/keys/rotate", data={"csrf_token": token})
    assert rotated.status_code == 303 and rotated.headers["location"] == "/console"
    page = (await browser.http.get(ADMIN + "/console")).text
    assert "Rotated:" in page and page.count("Revoke…") == before + 1
    assert "pending" in page
    async with httpx.AsyncClient(transport=httpx.ASGITransport(browser.app)) as other:  # no session
        assert (
            await other.post(ADMIN + "/console/keys/rotate", data={"csrf_token": token})
        ).status_code == 403


async def test_revoking_a_key_takes_a_confirmation(browser: Browser) -> None:
    await browser.sign_in()
    view = (await _admin_view(browser))["keys"]
    kid = next(k["kid"] for k in view if k["state"] == "signing")
    token = await browser.csrf()
    confirm = await browser.http.post(ADMIN + f"/console/keys/{kid}/revoke", data={"csrf_token": token})
    assert confirm.status_code == 200 and "Revoke this key?" in confirm.text and 'value="yes"' in confirm.text
    assert next(k for k in (await _admin_view(browser))["keys"] if k["kid"] == kid)["state"] == "signing"
    done = await browser.http.post(
        ADMIN + f"/console/keys/{kid}/revoke", data={"csrf_token": token, "confirm": "yes"}
    )
    assert done.status_code == 303
    assert next(k for k in (await _admin_view(browser))["keys"] if k["kid"] == kid)["state"] == "revoked"


async def _admin_view(browser: Browser) -> dict[str, Any]:
    token = (await browser.harness.login("root", ROOT_PASSWORD)).json()["access_token"]
    answer = await browser.http.get(ADMIN + "/admin/keys", headers={"Authorization": f"Bearer {token}"})
    return answer.json()  # type: ignore[no-any-return]


async def test_a_client_secret_rotated_with_an_overlap_and_a_removal(browser: Browser) -> None:
    harness = browser.harness
    old = await harness.add_service_client("svc", scopes=frozenset({"read"}))
    await browser.sign_in()
    listed = await browser.http.get(ADMIN + "/console/clients")
    assert "/console/clients/svc" in listed.text
    token = await browser.csrf("/console/clients/svc")
    shown = await browser.http.post(
        ADMIN + "/console/clients/svc/secret", data={"csrf_token": token, "overlap": "3600"}
    )
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    new = re.search(r'<code id="client-secret">([^<]+)</code>', shown.text)
    assert new is not None

    async def status(secret: str) -> int:
        answer = await harness.client.post(
            "/token", data={"grant_type": "client_credentials"}, auth=("svc", secret)
        )
        return answer.status_code

    assert await status(old) == 200 and await status(new.group(1)) == 200
    harness.clock.advance(3601)
    assert await status(old) == 401 and await status(new.group(1)) == 200
    await browser.sign_in()  # the console's token has expired meanwhile
    token = await browser.csrf("/console/clients/svc")
    bad = await browser.http.post(
        ADMIN + "/console/clients/svc/secret", data={"csrf_token": token, "overlap": "7"}
    )
    assert (
        bad.status_code == 303
        and "Choose an overlap" in (await browser.http.get(ADMIN + bad.headers["location"])).text
    )
    confirm = await browser.http.post(ADMIN + "/console/clients/svc/remove", data={"csrf_token": token})
    assert "Remove this client?" in confirm.text
    removed = await browser.http.post(
        ADMIN + "/console/clients/svc/remove", data={"csrf_token": token, "confirm": "yes"}
    )
    assert removed.headers["location"] == "/console/clients"
    assert await status(new.group(1)) == 401
    missing = await browser.http.get(ADMIN + "/console/clients/svc")
    assert missing.status_code == 404


async def test_a_client_id_holding_a_slash_has_its_page_and_forms(browser: Browser) -> None:
    await browser.harness.add_service_client("team/app", scopes=frozenset({"read"}))
    await browser.sign_in()
    page = "/console/clients/team%2Fapp"
    assert page in (await browser.http.get(ADMIN + "/console/clients")).text
    shown = await browser.http.get(ADMIN + page)
    assert shown.status_code == 200 and "team/app" in shown.text, shown.status_code
    token = await browser.csrf(page)
    rotated = await browser.http.post(ADMIN + page + "/secret", data={"csrf_token": token, "overlap": "0"})
    assert rotated.status_code == 200 and 'id="client-secret"' in rotated.text, rotated.status_code
    removed = await browser.http.post(ADMIN + page + "/remove", data={"csrf_token": token, "confirm": "yes"})
    assert removed.headers["location"] == "/console/clients"
    assert (await browser.http.get(ADMIN + page)).status_code == 404


async def test_users_disable_enable_password_and_log_out_everywhere(browser: Browser) -> None:
    harness = browser.harness
    await browser.sign_in()
    tokens = (await harness.login("alice")).json()
    page = await browser.http.get(ADMIN + "/console/users/alice")
    assert page.status_code == 200 and "Sessions (1)" in page.text
    token = form_of(page).hidden["csrf_token"]
    base = ADMIN + "/console/users/alice"
    out = await browser.http.post(base + "/sessions", data={"csrf_token": token})
    assert out.status_code == 303 and "1 session ended" in (await browser.http.get(base)).text
    assert (await harness.refresh(tokens["refresh_token"])).status_code == 400
    await browser.http.post(base + "/disabled", data={"csrf_token": token, "disabled": "true"})
    assert (await harness.login("alice")).status_code == 400
    await browser.http.post(base + "/disabled", data={"csrf_token": token, "disabled": "false"})
    short = await browser.http.post(base + "/password", data={"csrf_token": token, "password": "x"})
    assert 'class="flash error"' in (await browser.http.get(ADMIN + short.headers["location"])).text
    await browser.http.post(base + "/password", data={"csrf_token": token, "password": "a brand new one"})
    assert (await harness.login("alice", "a brand new one")).status_code == 200
    listed = await browser.http.get(ADMIN + "/console/users")
    assert "/console/users/alice" in listed.text and "/console/users/root" in listed.text


async def test_a_logged_out_admin_signs_in_again(browser: Browser) -> None:
    await browser.sign_in()
    token = await browser.csrf("/console/users/root")
    await browser.http.post(ADMIN + "/console/users/root/sessions", data={"csrf_token": token})
    again = await browser.http.get(ADMIN + "/console/users/root")
    assert again.status_code == 303 and again.headers["location"].startswith(ISSUER + "/authorize")


async def test_logout_ends_the_console_session_and_the_sign_in(browser: Browser) -> None:
    await browser.sign_in()
    token = await browser.csrf()
    out = await browser.http.post(ADMIN + "/console/logout", data={"csrf_token": token})
    assert out.status_code == 303
    assert out.headers["location"].startswith(ISSUER + "/logout?id_token_hint=")
    assert (await browser.http.get(ADMIN + "/console")).status_code == 303
    issuer_logout = await browser.http.get(out.headers["location"])
    assert issuer_logout.status_code == 303
    assert issuer_logout.headers["location"] == ADMIN + "/console/signed-out"
    signed_out = await browser.http.get(issuer_logout.headers["location"])
    assert signed_out.status_code == 200 and "Signed out" in signed_out.text
    start = await browser.http.get(ADMIN + "/console")  # the browser's sign-in ended too
    page = await browser.http.get(start.headers["location"])
    assert 'name="password"' in page.text
    refused = await browser.http.post(ADMIN + "/console/logout", data={"csrf_token": token})
    assert refused.status_code == 403


async def test_without_an_admin_listener_there_is_no_console_client(harness: AppHarness) -> None:
    assert await harness.services.clients.get(CONSOLE_CLIENT_ID) is None
    async with httpx.AsyncClient(transport=httpx.ASGITransport(harness.app.admin)) as http:
        answer = await http.get(ADMIN + "/console")
    assert answer.status_code == 400 and "admin address" in answer.text


async def test_an_unregistered_admin_address_is_refused_before_authorize(browser: Browser) -> None:
    answer = await browser.http.get("http://admin.evil.example:9001/console")
    assert answer.status_code == 400


def test_the_timeline_draws_every_span_now_and_the_next_change() -> None:
    now = 1_800_000_000.0
    keys = [
        _key("a" * 43, now - 86400, now - 86400, now + 3600, now + 3600 + 960, state="signing"),
        _key("b" * 43, now - 60, now + 3600, None, None, state="pending"),
        _key("c" * 43, now - 86400, None, None, None, state="standby", standby=True),
        _key("d" * 43, now - 7200, now - 7200, now - 3600, now - 3600, state="revoked", revoked=now - 3600),
    ]
    view = {"now": now, "keys": keys, "next_change": now + 3600, "jwks_max_age": 3600, "rotation_due": None}
    drawn = draw(view)
    kinds = [[s.kind for s in row.spans] for row in drawn.rows]
    assert kinds == [["signing", "retiring"], ["pending", "signing"], ["standby"], ["signing", "revoked"]]
    assert drawn.rows[1].spans[-1].open_end and not drawn.rows[0].spans[-1].open_end
    assert drawn.next_change is not None and drawn.next_change.x > drawn.now.x
    assert drawn.next_change.label == "aaaaaaaaaa… stops signing"
    assert "in 1 h" in drawn.next_change_text and "max-age=3600" in drawn.summary
    assert all(s.width >= 4 for row in drawn.rows for s in row.spans)
    assert drawn.ticks and all(drawn.plot_left <= t.x <= drawn.plot_right for t in drawn.ticks)


def _key(
    kid: str,
    published: float,
    signs_from: float | None,
    signs_until: float | None,
    leaves: float | None,
    *,
    state: str,
    standby: bool = False,
    revoked: float | None = None,
) -> dict[str, Any]:
    return {
        "kid": kid,
        "alg": "ES256",
        "state": state,
        "standby": standby,
        "published_at": published,
        "signs_from": signs_from,
        "signs_until": signs_until,
        "leaves_jwks_at": leaves,
        "revoked_at": revoked,
        "private_key_destroyed_at": None,
    }


async def test_a_session_made_by_one_worker_serves_every_other(
    browser: Browser, harness_factory: Any
) -> None:
    """``serve --workers N``: the sign-in lands on one process, the next page and form on another.
    Console sessions live in the database, so the other process knows them (in one process's memory
    the second worker sent the browser to sign in again and refused the form)."""
    await browser.sign_in()
    other: AppHarness = await harness_factory(admin_bind="127.0.0.1:9001")  # same database and keys
    other_app = Listeners(other.app, other.app.admin, 9001)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(other_app), cookies=browser.http.cookies
    ) as http:
        page = await http.get(ADMIN + "/console")
        assert page.status_code == 200, page.headers.get("location")
        csrf = form_of(page).hidden["csrf_token"]
        rotated = await http.post(ADMIN + "/console/keys/rotate", data={"csrf_token": csrf})
        assert rotated.status_code == 303, rotated.text
    # The message the form left is shown by the first process.
    after = await browser.http.get(ADMIN + "/console")
    assert after.status_code == 200 and ("Rotated" in after.text or "needed no change" in after.text)


async def test_the_database_holds_no_admin_token(browser: Browser) -> None:
    """The session row is sealed with a key only the browser's handle gives."""
    import sqlite3

    await browser.sign_in()
    path = browser.harness.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT id, parameters FROM pending_requests WHERE kind = 'console'").fetchall()
    assert rows
    for row_id, parameters in rows:
        assert "eyJ" not in parameters and "access_token" not in parameters
        assert all(row_id not in cookie.value for cookie in browser.http.cookies.jar)
