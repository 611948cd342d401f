"""Browser sign-in under attack (issue 15; CONTRACT.md "Browser sign-in", spec/browser_signin.md).

Every refusal is a clear 4xx page or an error redirect, never a 5xx: an
unregistered redirect URI (and its near misses) or an unknown client gets a
400 page and no ``Location``; the other /authorize errors go back to the
client with ``error``, ``state`` and ``iss``. At /token a code is bound to its
client, redirect URI and PKCE verifier, lives AUTHSVC_AUTH_CODE_TTL and is
single use (a second redemption revokes the first's tokens). The hosted forms
need their CSRF token and cookie, every page refuses framing, logout never
redirects to an unregistered URI, a PAR request_uri is single use, the login
limits hold on the hosted form, and a wrong password looks exactly like an
unknown user.

The ASGI harness with a frozen clock; users and clients are registered
through the CLI once per module and the database copied for each test.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from tests.browser_flow import (
    Form,
    authorization_url,
    callback_query,
    page_form,
    pkce_pair,
    sign_in,
)
from tests.oidc_support import OIDC_SCOPES, PASSWORD, add_browser_client, add_user
from tests.support import ISSUER, AppHarness, LiveServer, claims_of, create_database, run_cli
from tests.test_trust_limits import _failed_logins
from tests.trust_support import add_confidential_client, cli_env

WEB = "https://rp.example/cb"
WEB_LOGOUT = "https://rp.example/bye"
LOOPBACK = "http://127.0.0.1/cb"  # registered; any port matches
LOOP = "http://127.0.0.1:8080/cb"  # what the native app sends
LIMIT = 3
APP_ORIGIN = "https://app.example"
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}

Factory = Callable[..., Any]


# --- the world: users and clients registered once, through the CLI --------------------------------
@dataclass
class Template:
    directory: Path
    secrets: dict[str, str]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    directory = tmp_path_factory.mktemp("attack-world")
    with contextlib.chdir(directory):  # no stray .env
        env = cli_env(directory)
        create_database(env)
        add_user(env, "alice")
        secrets: dict[str, str] = {}
        web = add_browser_client(
            env,
            "web",
            WEB,
            scope=OIDC_SCOPES + " read",
            extra=("--post-logout-redirect-uri", WEB_LOGOUT),
        )
        assert web is not None
        secrets["web"] = web
        add_browser_client(
            env, "spa", LOOPBACK, kind="public", first_party=True, extra=("--web-origin", APP_ORIGIN)
        )
        add_browser_client(env, "twin", LOOPBACK, kind="public", first_party=True)  # same redirect URI
        add_browser_client(env, "no-refresh", LOOPBACK, kind="public", first_party=True, refresh=False)
        par_only = add_browser_client(env, "par-only", WEB, first_party=True, extra=("--require-par",))
        assert par_only is not None
        secrets["par-only"] = par_only
        other_web = add_browser_client(env, "other-web", "https://other.example/cb", first_party=True)
        assert other_web is not None
        secrets["other-web"] = other_web
    with contextlib.chdir(directory):
        secrets["m2m"] = add_confidential_client(env, "m2m", "client_credentials")
    return Template(directory, secrets)


@dataclass
class World:
    h: AppHarness
    secrets: dict[str, str]
    browsers: list[httpx.AsyncClient] = field(default_factory=list)

    def browser(self, base_url: str = ISSUER) -> httpx.AsyncClient:
        """A new browser: its own cookie jar, never following redirects by itself."""
        client = httpx.AsyncClient(transport=httpx.ASGITransport(self.h.app), base_url=base_url)
        self.browsers.append(client)
        return client

    async def redeem(
        self,
        code: str,
        verifier: str | None,
        redirect_uri: str | None,
        client_id: str = "spa",
        **extra: str,
    ) -> httpx.Response:
        form = {"grant_type": "authorization_code", "code": code, **extra}
        if verifier is not None:
            form["code_verifier"] = verifier
        if redirect_uri is not None:
            form["redirect_uri"] = redirect_uri
        auth = None
        if client_id in self.secrets:
            auth = (client_id, self.secrets[client_id])
        else:
            form["client_id"] = client_id
        return await self.h.client.post("/token", data=form, auth=auth)  # type: ignore[arg-type]

    async def code(
        self,
        browser: httpx.AsyncClient | None = None,
        client_id: str = "spa",
        redirect_uri: str = LOOP,
        **params: str,
    ) -> tuple[str, str]:
        """A fresh code by signing in through the pages; (code, verifier)."""
        verifier, challenge = pkce_pair()
        query = await sign_in(
            browser or self.browser(),
            authorize(client_id, redirect_uri, challenge, **params),
            "alice",
            PASSWORD,
        )
        assert "code" in query, query
        return query["code"], verifier

    async def tokens(self, client_id: str = "spa", redirect_uri: str = LOOP, **params: str) -> dict[str, Any]:
        code, verifier = await self.code(None, client_id, redirect_uri, **params)
        answer = await self.redeem(code, verifier, redirect_uri, client_id)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]


@pytest.fixture
async def world_factory(
    template: Template, tmp_path: Path, harness_factory: Factory
) -> AsyncIterator[Callable[..., Any]]:
    worlds: list[World] = []

    async def build(**overrides: Any) -> World:
        for path in template.directory.glob("authsvc.db*"):
            shutil.copy(path, tmp_path / path.name)
        world = World(await harness_factory(**overrides), dict(template.secrets))
        worlds.append(world)
        return world

    yield build
    for world in worlds:
        for browser in world.browsers:
            await browser.aclose()


@pytest.fixture
async def world(world_factory: Callable[..., Any]) -> World:
    return await world_factory()  # type: ignore[no-any-return]


def authorize(
    client_id: str = "spa", redirect_uri: str = LOOP, challenge: str | None = None, **params: str | None
) -> str:
    values: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid profile",
        "state": "st-123",
        "code_challenge": challenge or pkce_pair()[1],
        "code_challenge_method": "S256",
    }
    values.update(params)
    return authorization_url(ISSUER, **{k: v for k, v in values.items() if v is not None})


# --- what every answer must look like --------------------------------------------------------------
def assert_page(response: httpx.Response, status: int) -> None:
    """A hosted HTML page: its status, no redirect, and the headers every page carries."""
    assert response.status_code == status, (
        f"expected a {status} page, got {response.status_code} {response.headers.get('location', '')}: "
        f"{response.text[:300]}"
    )
    assert response.headers.get("content-type", "").startswith("text/html"), response.headers
    assert "location" not in response.headers, response.headers["location"]
    assert_page_headers(response)


def assert_page_headers(response: httpx.Response) -> None:
    headers = response.headers
    what = f"{response.request.method} {response.request.url.path} {response.status_code}"
    assert "frame-ancestors 'none'" in headers.get("content-security-policy", ""), what
    assert headers.get("x-frame-options", "").upper() == "DENY", what
    assert headers.get("referrer-policy") == "no-referrer", what
    assert "no-store" in headers.get("cache-control", ""), what
    assert headers.get("x-content-type-options") == "nosniff", what


def assert_error_redirect(
    response: httpx.Response, redirect_uri: str, error: str | set[str], state: str | None = "st-123"
) -> dict[str, str]:
    """RFC 6749 §4.1.2.1 with RFC 9207: 303 to the redirect URI, error, the state sent, iss."""
    assert response.status_code == 303, (
        f"expected a 303 error redirect, got {response.status_code}: {response.text[:300]}"
    )
    location = response.headers["location"]
    assert location.split("?", 1)[0] == redirect_uri, location
    query = callback_query(location)
    expected = {error} if isinstance(error, str) else error
    assert query.get("error") in expected, query
    assert query.get("iss") == ISSUER, query
    assert "code" not in query, query
    if state is not None:
        assert query.get("state") == state, query
    return query


def assert_token_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, (
        f"expected {status} {error}, got {response.status_code}: {response.text}"
    )
    assert response.json()["error"] == error, response.text


async def login_page(browser: httpx.AsyncClient, url: str | None = None) -> tuple[httpx.Response, Form]:
    page = await browser.get(url or authorize())
    assert_page(page, 200)
    form = page_form(page)
    assert form.is_login, page.text[:500]
    return page, form


async def post_form(
    browser: httpx.AsyncClient, page: httpx.Response, form: Form, fields: dict[str, str]
) -> httpx.Response:
    return await browser.post(form.url(page), data=fields, headers={"Origin": ISSUER})


# --- 1. redirect URIs and clients: a page, never a redirect -----------------------------------------
NEAR_MISSES = [
    ("web", "https://rp.example/cb/"),  # trailing slash
    ("web", "https://rp.example/cb2"),
    ("web", "https://rp.example/other"),  # other path
    ("web", "https://rp.example:8443/cb"),  # other port, not loopback
    ("web", "http://rp.example/cb"),  # other scheme
    ("web", "https://rp.example/cb#fragment"),
    ("web", "https://rp.example/cb?next=https://evil.example/"),
    ("web", "https://rp.example@evil.example/cb"),  # userinfo tricks
    ("web", "https://evil.example@rp.example/cb"),
    ("web", "https://evil.example\\@rp.example/cb"),
    ("web", "https://rp.example.evil.example/cb"),
    ("web", "https://rp.example/cb/../cb"),
    ("web", "https://rp.example/%2e%2e/cb"),
    ("web", "//rp.example/cb"),
    ("web", "https://rp.example/cb%20"),
    ("web", "javascript:alert(1)//https://rp.example/cb"),
    ("web", LOOP),  # another client's URI
    ("spa", "http://127.0.0.1:8080/other"),  # loopback: any port, but only the registered path
    ("spa", "http://127.0.0.1:8080/cb/"),
    ("spa", "https://127.0.0.1:8080/cb"),
    ("spa", "http://localhost:8080/cb"),
    ("spa", "http://127.0.0.2:8080/cb"),
    ("spa", "http://127.0.0.1.evil.example:8080/cb"),
    ("spa", "http://127.0.0.1:8080@evil.example/cb"),
    ("spa", "http://evil.example@127.0.0.1:8080/cb"),
    ("spa", "http://127.0.0.1:8080/cb#fragment"),
    ("spa", "http://127.0.0.1:abc/cb"),
    ("spa", "http://127.0.0.1:99999/cb"),
    ("spa", "http://127.0.0.1:8080/cb?x=1"),
    ("spa", "http://127.0.0.1:8080/c\tb"),  # urlsplit drops tabs and newlines; a browser goes elsewhere
    ("spa", "http://127.0.0.1:8080/c\r\nb"),
    ("spa", "http://127.0.0.1:8080/cb\n"),
    ("spa", "http://127.0.0.1:8080/\tcb"),
    ("spa", "http://127.0.0.1:8\t080/cb"),
    ("web", "https://rp.example/c\tb"),
    ("spa", WEB),
]


async def test_registered_redirect_uris_reach_the_login_page(world: World) -> None:
    """The control for the near misses: the registered URIs (loopback on any port) are accepted."""
    for client_id, uri in [
        ("web", WEB),
        ("spa", LOOPBACK),
        ("spa", LOOP),
        ("spa", "http://127.0.0.1:49152/cb"),
    ]:
        page, _ = await login_page(world.browser(), authorize(client_id, uri))
        assert page.status_code == 200


async def test_unregistered_redirect_uris_get_a_400_page(world: World) -> None:
    failures = []
    for client_id, uri in NEAR_MISSES:
        for method in ("GET", "POST"):
            browser = world.browser()
            if method == "GET":
                answer = await browser.get(authorize(client_id, uri))
            else:
                url = authorize(client_id, uri)
                answer = await browser.post("/authorize", content=urlsplit(url).query, headers=_FORM)
            if answer.status_code != 400 or "location" in answer.headers:
                failures.append(
                    f"{method} {client_id} {uri!r}: {answer.status_code} {answer.headers.get('location', '')}"
                )
            else:
                assert_page(answer, 400)
    assert not failures, "not a 400 page:\n" + "\n".join(failures)


async def test_missing_redirect_uri_unknown_and_unfit_clients_get_a_400_page(world: World) -> None:
    cases = {
        "missing redirect_uri": authorize("web", None),  # type: ignore[arg-type]
        "empty redirect_uri": authorize("web", ""),
        "unknown client": authorize("nobody", WEB),
        "missing client_id": authorize(None, WEB),  # type: ignore[arg-type]
        "client without the authorization_code grant": authorize("m2m", WEB),
        "the built-in default client": authorize(world.h.settings.default_client_id, LOOP),
    }
    failures = []
    for what, url in cases.items():
        answer = await world.browser().get(url)
        if answer.status_code != 400 or "location" in answer.headers:
            failures.append(f"{what}: {answer.status_code} {answer.headers.get('location', '')}")
        else:
            assert_page(answer, 400)
    assert not failures, "not a 400 page:\n" + "\n".join(failures)


async def test_repeated_client_id_or_redirect_uri_never_leads_off_the_list(world: World) -> None:
    """Which one would count? Either the 400 page, or invalid_request to a URI registered for both."""
    for url in (
        authorize("web", WEB) + "&" + urlencode({"redirect_uri": "https://evil.example/cb"}),
        authorize("web", "https://evil.example/cb") + "&" + urlencode({"redirect_uri": WEB}),
        authorize("web", WEB) + "&client_id=par-only",
        authorize("par-only", WEB) + "&client_id=web",
    ):
        answer = await world.browser().get(url)
        if answer.status_code == 303:
            assert_error_redirect(answer, WEB, "invalid_request")
        else:
            assert_page(answer, 400)


# --- 2. the other /authorize errors: back to the client with error, state and iss -------------------
REDIRECTED = [
    ("missing code_challenge", {"code_challenge": None}, "invalid_request"),
    ("missing code_challenge_method", {"code_challenge_method": None}, "invalid_request"),
    ("method plain", {"code_challenge_method": "plain"}, "invalid_request"),
    ("method s256 in lower case", {"code_challenge_method": "s256"}, "invalid_request"),
    ("challenge too short", {"code_challenge": "abc"}, "invalid_request"),
    ("challenge too long", {"code_challenge": "a" * 129}, "invalid_request"),
    ("challenge with characters outside base64url", {"code_challenge": "+" * 43}, "invalid_request"),
    ("response_type token", {"response_type": "token"}, "unsupported_response_type"),
    ("response_type code id_token", {"response_type": "code id_token"}, "unsupported_response_type"),
    ("missing response_type", {"response_type": None}, {"invalid_request", "unsupported_response_type"}),
    ("unknown scope", {"scope": "openid admin"}, "invalid_scope"),
    ("scope the client may not ask for", {"scope": "openid write"}, "invalid_scope"),
    ("max_age not a number", {"max_age": "soon"}, "invalid_request"),
    ("negative max_age", {"max_age": "-1"}, "invalid_request"),
    ("prompt=none without a session", {"prompt": "none"}, "login_required"),
]


async def test_authorize_errors_go_back_with_error_state_and_iss(world: World) -> None:
    failures = []
    for what, params, error in REDIRECTED:
        for method in ("GET", "POST"):
            url = authorize("spa", LOOP, **params)
            browser = world.browser()
            if method == "GET":
                answer = await browser.get(url)
            else:
                answer = await browser.post("/authorize", content=urlsplit(url).query, headers=_FORM)
            try:
                assert answer.status_code < 500
                assert_error_redirect(answer, LOOP, error)
            except (AssertionError, KeyError) as exc:
                failures.append(
                    f"{method} {what}: {answer.status_code} {answer.headers.get('location')} {exc}"
                )
    assert not failures, "\n".join(failures)


async def test_repeated_parameter_is_invalid_request(world: World) -> None:
    answer = await world.browser().get(authorize() + "&scope=openid")
    assert_error_redirect(answer, LOOP, "invalid_request")


async def test_no_state_sent_no_state_returned(world: World) -> None:
    answer = await world.browser().get(authorize(code_challenge_method="plain", state=None))
    query = assert_error_redirect(answer, LOOP, "invalid_request", state=None)
    assert "state" not in query
    query = await sign_in(world.browser(), authorize(state=None), "alice", PASSWORD)
    assert set(query) == {"code", "iss"}, query


async def test_prompt_none_with_a_session_but_no_consent_is_consent_required(world: World) -> None:
    browser = world.browser()
    await world.code(browser)  # a session, from a first-party client
    answer = await browser.get(authorize("web", WEB, prompt="none"))
    assert_error_redirect(answer, WEB, "consent_required")
    answer = await browser.get(authorize("spa", LOOP, prompt="none"))  # first party: no consent needed
    assert answer.status_code == 303
    assert "code" in callback_query(answer.headers["location"])


async def test_denied_consent_is_access_denied(world: World) -> None:
    query = await sign_in(world.browser(), authorize("web", WEB), "alice", PASSWORD, consent="deny")
    assert query.get("error") == "access_denied" and query.get("iss") == ISSUER, query
    assert query.get("state") == "st-123"


# --- 3. the code at /token ---------------------------------------------------------------------------
async def test_wrong_or_missing_code_verifier(world: World) -> None:
    code, verifier = await world.code()
    assert_token_error(await world.redeem(code, pkce_pair()[0], LOOP), 400, "invalid_grant")
    code, verifier = await world.code()
    assert_token_error(await world.redeem(code, None, LOOP), 400, "invalid_request")
    code, verifier = await world.code()
    assert_token_error(await world.redeem(code, verifier[:-1], LOOP), 400, "invalid_grant")
    code, verifier = await world.code()
    _, challenge = pkce_pair()
    # the challenge itself is not a verifier
    assert_token_error(await world.redeem(code, challenge, LOOP), 400, "invalid_grant")


async def test_redirect_uri_at_token_must_equal_the_one_of_authorize(world: World) -> None:
    for sent in ("http://127.0.0.1:8081/cb", "http://127.0.0.1:8080/cb/", LOOPBACK):
        code, verifier = await world.code()  # LOOP: port 8080
        assert_token_error(await world.redeem(code, verifier, sent), 400, "invalid_grant")
    code, verifier = await world.code()
    assert_token_error(await world.redeem(code, verifier, None), 400, "invalid_request")


async def test_code_of_another_client(world: World) -> None:
    code, verifier = await world.code(client_id="spa")
    assert_token_error(await world.redeem(code, verifier, LOOP, "twin"), 400, "invalid_grant")
    code, verifier = await world.code(client_id="web", redirect_uri=WEB)
    assert_token_error(await world.redeem(code, verifier, WEB, "other-web"), 400, "invalid_grant")
    assert_token_error(await world.redeem(code, verifier, WEB, "spa"), 400, "invalid_grant")


async def test_confidential_client_must_authenticate_to_redeem(world: World) -> None:
    code, verifier = await world.code(client_id="web", redirect_uri=WEB)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": WEB,
        "client_id": "web",
    }
    answer = await world.h.client.post("/token", data=form)
    assert_token_error(answer, 401, "invalid_client")
    answer = await world.h.client.post("/token", data=form, auth=("web", "not-the-secret-at-all"))
    assert_token_error(answer, 401, "invalid_client")


async def test_unknown_and_garbage_codes(world: World) -> None:
    for code in ("nope", "x" * 2000, "a.b.c"):
        assert_token_error(await world.redeem(code, pkce_pair()[0], LOOP), 400, "invalid_grant")


async def test_expired_code(world: World) -> None:
    ttl = world.h.settings.auth_code_ttl
    code, verifier = await world.code()
    world.h.clock.advance(ttl - 1)
    assert (await world.redeem(code, verifier, LOOP)).status_code == 200, "a code inside its lifetime"
    code, verifier = await world.code()
    world.h.clock.advance(ttl + 1)
    assert_token_error(await world.redeem(code, verifier, LOOP), 400, "invalid_grant")


async def test_code_reuse_revokes_the_first_redemption(world: World) -> None:
    code, verifier = await world.code(client_id="web", redirect_uri=WEB)
    first = await world.redeem(code, verifier, WEB, "web")
    assert first.status_code == 200, first.text
    tokens = first.json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await world.h.client.get("/userinfo", headers=bearer)).status_code == 200

    assert_token_error(await world.redeem(code, verifier, WEB, "web"), 400, "invalid_grant")
    refreshed = await world.h.client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=("web", world.secrets["web"]),
    )
    assert_token_error(refreshed, 400, "invalid_grant")
    me = await world.h.me(tokens["access_token"])
    assert me.status_code == 401, f"the first redemption's access token still works: {me.status_code}"
    assert (await world.h.client.get("/userinfo", headers=bearer)).status_code == 401
    introspected = await world.h.client.post(
        "/introspect", data={"token": tokens["access_token"]}, auth=("web", world.secrets["web"])
    )
    assert introspected.json() == {"active": False}


async def test_refresh_token_only_with_the_grant(world: World) -> None:
    tokens = await world.tokens("no-refresh", LOOP)
    assert "refresh_token" not in tokens
    assert tokens["token_type"] == "Bearer" and "id_token" in tokens
    tokens = await world.tokens("spa", LOOP, scope="profile")  # no openid: no ID token
    assert "id_token" not in tokens and "refresh_token" in tokens


# --- 4. CSRF on the hosted forms ---------------------------------------------------------------------
async def test_login_post_without_csrf_token_or_cookie_is_403(world: World) -> None:
    browser = world.browser()
    page, form = await login_page(browser)
    login = {**form.fields, "username": "alice", "password": PASSWORD}
    assert "csrf_token" in form.hidden and "interaction" in form.hidden, form.hidden

    without_token = {k: v for k, v in login.items() if k != "csrf_token"}
    answer = await post_form(browser, page, form, without_token)
    assert_page(answer, 403)
    assert not _session_cookie_set(answer)

    empty_token = {**login, "csrf_token": ""}
    assert_page(await post_form(browser, page, form, empty_token), 403)

    stranger = world.browser()  # no cookie at all
    answer = await post_form(stranger, page, form, login)
    assert_page(answer, 403)
    assert not _session_cookie_set(answer)

    other = world.browser()  # another browser's token with this browser's cookie
    other_page, other_form = await login_page(other)
    assert other_form.fields["csrf_token"] != form.fields["csrf_token"]
    answer = await post_form(browser, page, form, {**login, "csrf_token": other_form.fields["csrf_token"]})
    assert_page(answer, 403)
    # ...and the other browser's whole form (its interaction and token) with this browser's cookie
    answer = await post_form(browser, other_page, other_form, {**other_form.fields, **_credentials()})
    assert_page(answer, 403)

    # the untouched form still works: the refusals above changed nothing
    answer = await post_form(browser, page, form, login)
    assert answer.status_code == 303, answer.text[:300]
    assert "code" in callback_query(answer.headers["location"])


async def test_consent_post_without_csrf_token_is_403(world: World) -> None:
    browser = world.browser()
    page, form = await login_page(browser, authorize("web", WEB))
    consent_page = await post_form(browser, page, form, {**form.fields, **_credentials()})
    assert_page(consent_page, 200)
    consent = page_form(consent_page)
    assert consent.is_consent
    assert sorted(consent.button_values("consent")) == ["allow", "deny"]
    fields = {k: v for k, v in consent.fields.items() if k != "csrf_token"}
    answer = await post_form(browser, consent_page, consent, {**fields, "consent": "allow"})
    assert_page(answer, 403)
    answer = await post_form(world.browser(), consent_page, consent, {**consent.fields, "consent": "allow"})
    assert_page(answer, 403)


def _credentials(username: str = "alice", password: str = PASSWORD) -> dict[str, str]:
    return {"username": username, "password": password}


def _session_cookie_set(response: httpx.Response) -> bool:
    return any("authsvc_session" in value for value in response.headers.get_list("set-cookie"))


# --- 5. cookies -------------------------------------------------------------------------------------
async def test_session_and_csrf_cookies_on_http(world: World) -> None:
    browser = world.browser()
    page, form = await login_page(browser)
    csrf = [c for c in page.headers.get_list("set-cookie") if c.startswith("authsvc_csrf=")]
    assert len(csrf) == 1, page.headers.get_list("set-cookie")
    assert "httponly" in csrf[0].lower()
    answer = await post_form(browser, page, form, {**form.fields, **_credentials()})
    assert answer.status_code == 303
    session = [c for c in answer.headers.get_list("set-cookie") if c.startswith("authsvc_session=")]
    assert len(session) == 1, answer.headers.get_list("set-cookie")
    attributes = {part.strip().split("=")[0].lower(): part for part in session[0].split(";")[1:]}
    assert "httponly" in attributes
    assert attributes["samesite"].split("=")[1].strip().lower() == "lax"
    assert "secure" not in attributes  # an http issuer
    assert "domain" not in attributes


async def test_session_and_csrf_cookies_on_https(world_factory: Callable[..., Any]) -> None:
    issuer = "https://auth.example"
    world = await world_factory(issuer=issuer)
    browser = world.browser(base_url=issuer)
    url = authorize().replace(ISSUER, issuer)
    page = await browser.get(url)
    assert_page(page, 200)
    form = page_form(page)
    cookies = page.headers.get_list("set-cookie")
    assert any(c.startswith("__Host-authsvc_csrf=") for c in cookies), cookies
    answer = await browser.post(
        form.url(page), data={**form.fields, **_credentials()}, headers={"Origin": issuer}
    )
    assert answer.status_code == 303, answer.text[:300]
    assert callback_query(answer.headers["location"])["iss"] == issuer
    for cookie in [*cookies, *answer.headers.get_list("set-cookie")]:
        if "authsvc_" not in cookie.split("=")[0]:
            continue
        name = cookie.split("=")[0]
        attributes = [part.strip().lower() for part in cookie.split(";")[1:]]
        assert name.startswith("__Host-"), cookie
        assert "secure" in attributes and "path=/" in attributes, cookie
        assert not any(a.startswith("domain") for a in attributes), cookie
    assert any(c.startswith("__Host-authsvc_session=") for c in answer.headers.get_list("set-cookie"))


# --- 6. framing and the other page headers on every page -------------------------------------------
async def test_every_page_refuses_framing(world_factory: Callable[..., Any]) -> None:
    world = await world_factory(login_max_per_user=1, login_max_per_address=100_000)
    pages: list[httpx.Response] = []
    browser = world.browser()
    page, form = await login_page(browser, authorize("web", WEB))
    pages.append(page)  # the login page
    consent = await post_form(browser, page, form, {**form.fields, **_credentials()})
    pages.append(consent)  # the consent page
    tokens = await world.tokens("spa", LOOP)
    pages.append(await world.browser().get("/logout", params={"id_token_hint": tokens["id_token"]}))
    pages.append(await world.browser().get("/logout"))  # the confirmation page
    pages.append(await world.browser().get(authorize("nobody", WEB)))  # the 400 page
    pages.append(await post_form(world.browser(), page, form, form.fields))  # the 403 page

    browser = world.browser()
    page, form = await login_page(browser)
    wrong = await post_form(browser, page, form, {**form.fields, **_credentials(password="wrong-password")})
    pages.append(wrong)  # the form again
    again = page_form(wrong)
    limited = await post_form(browser, wrong, again, {**again.fields, **_credentials()})
    pages.append(limited)  # the 429 page
    for answer in pages:
        assert answer.status_code < 500, answer.text[:300]
        assert answer.headers.get("content-type", "").startswith("text/html"), answer.request.url
        assert_page_headers(answer)
    assert [p.status_code for p in pages] == [200, 200, 200, 200, 400, 403, 200, 429]
    assert page_form(consent).is_consent
    assert int(limited.headers["retry-after"]) >= 1


# --- 7. logout: no open redirect ----------------------------------------------------------------------
async def _signed_in_web(world: World) -> tuple[httpx.AsyncClient, dict[str, Any]]:
    browser = world.browser()
    code, verifier = await world.code(browser, "web", WEB)
    answer = await world.redeem(code, verifier, WEB, "web")
    assert answer.status_code == 200, answer.text
    return browser, answer.json()


async def test_logout_refuses_unregistered_post_logout_redirect_uris(world: World) -> None:
    browser, tokens = await _signed_in_web(world)
    hint = tokens["id_token"]
    for uri in (
        "https://evil.example/",
        WEB_LOGOUT + "/",
        WEB_LOGOUT + "?x=1",
        "https://rp.example/bye@evil.example",
        "https://rp.example@evil.example/bye",
        "//evil.example/bye",
        WEB,  # a redirect URI is not a post-logout URI
        "https://rp.example:8443/bye",
    ):
        answer = await browser.get(
            "/logout", params={"id_token_hint": hint, "post_logout_redirect_uri": uri, "state": "s1"}
        )
        assert_page(answer, 400)
    # a hint naming another client, the URI registered for web
    spa = await world.tokens("spa", LOOP)
    answer = await browser.get(
        "/logout", params={"id_token_hint": spa["id_token"], "post_logout_redirect_uri": WEB_LOGOUT}
    )
    assert_page(answer, 400)
    # none of that signed the browser out
    assert (await browser.get(authorize("web", WEB))).status_code in (200, 303)
    refreshed = await world.h.client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=("web", world.secrets["web"]),
    )
    assert refreshed.status_code == 200, refreshed.text


async def test_logout_with_a_hint_ends_the_session_and_its_families(world: World) -> None:
    browser, tokens = await _signed_in_web(world)
    answer = await browser.get(
        "/logout",
        params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": WEB_LOGOUT, "state": "s1"},
    )
    assert answer.status_code == 303, answer.text[:300]
    assert answer.headers["location"] == WEB_LOGOUT + "?state=s1"
    refreshed = await world.h.client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=("web", world.secrets["web"]),
    )
    assert_token_error(refreshed, 400, "invalid_grant")
    again = await browser.get(authorize("spa", LOOP))
    assert_page(again, 200)
    assert page_form(again).is_login, "the browser session survived the logout"


async def test_logout_without_a_hint_asks_and_never_redirects_off_the_list(world: World) -> None:
    browser, _ = await _signed_in_web(world)
    for params in (
        {"post_logout_redirect_uri": "https://evil.example/"},
        {"post_logout_redirect_uri": "https://evil.example/", "client_id": "web"},
        {"post_logout_redirect_uri": WEB_LOGOUT, "id_token_hint": "not.a.token"},
    ):
        answer = await browser.get("/logout", params=params)
        assert answer.status_code in (200, 400), (params, answer.status_code, answer.text[:300])
        assert_page(answer, answer.status_code)
        if answer.status_code == 200:  # the confirmation: posting it must not go to the URI either
            form = page_form(answer)
            assert form.url(answer) == ISSUER + "/logout"
            assert form.button_values("logout") == ["yes"]
            done = await post_form(browser, answer, form, {**form.fields, "logout": "yes"})
            assert done.status_code < 500
            assert "evil.example" not in done.headers.get("location", ""), done.headers.get("location")
            browser, _ = await _signed_in_web(world)

    page = await browser.get("/logout")
    assert_page(page, 200)
    form = page_form(page)
    assert "csrf_token" in form.hidden
    without = {k: v for k, v in form.fields.items() if k != "csrf_token"}
    assert_page(await post_form(browser, page, form, {**without, "logout": "yes"}), 403)
    assert_page(await post_form(world.browser(), page, form, {**form.fields, "logout": "yes"}), 403)
    done = await post_form(browser, page, form, {**form.fields, "logout": "yes"})
    assert done.status_code in (200, 303), done.text[:300]
    again = await browser.get(authorize("spa", LOOP))
    assert_page(again, 200)
    assert page_form(again).is_login, "the confirmed logout left the session"


# --- 8. PAR -----------------------------------------------------------------------------------------
async def _par(world: World, client_id: str = "web", **params: str) -> tuple[str, str]:
    verifier, challenge = pkce_pair()
    form = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": WEB,
        "scope": "openid",
        "state": "st-par",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **params,
    }
    answer = await world.h.client.post("/par", data=form, auth=(client_id, world.secrets[client_id]))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    assert body["expires_in"] == 60
    return body["request_uri"], verifier


async def test_request_uri_is_single_use(world: World) -> None:
    request_uri, verifier = await _par(world, "par-only")
    url = f"{ISSUER}/authorize?{urlencode({'client_id': 'par-only', 'request_uri': request_uri})}"
    browser = world.browser()
    query = await sign_in(browser, url, "alice", PASSWORD, redirect_uri=WEB)
    assert query.get("state") == "st-par" and "code" in query, query
    assert (await world.redeem(query["code"], verifier, WEB, "par-only")).status_code == 200
    # A used request_uri names no redirect URI any more (the browser sent only client_id and
    # request_uri): an error page, never a redirect to a URI the request no longer proves.
    for again in (browser, world.browser()):
        answer = await again.get(url)
        assert_page(answer, 400)


async def test_unknown_request_uri_is_an_error_page(world: World) -> None:
    for params in (
        {"client_id": "par-only", "request_uri": "urn:ietf:params:oauth:request_uri:nope"},
        {"client_id": "par-only", "request_uri": "https://evil.example/request.jwt"},
    ):
        answer = await world.browser().get(f"{ISSUER}/authorize?{urlencode(params)}")
        assert_page(answer, 400)


async def test_request_uri_expires(world: World) -> None:
    request_uri, _ = await _par(world, "par-only")
    world.h.clock.advance(61)
    url = f"{ISSUER}/authorize?{urlencode({'client_id': 'par-only', 'request_uri': request_uri})}"
    assert_page(await world.browser().get(url), 400)


async def test_request_uri_of_another_client_gives_no_code(world: World) -> None:
    request_uri, _ = await _par(world, "web")
    url = f"{ISSUER}/authorize?{urlencode({'client_id': 'par-only', 'request_uri': request_uri})}"
    answer = await world.browser().get(url)
    assert answer.status_code in (303, 400), answer.text[:300]
    if answer.status_code == 303:
        assert_error_redirect(answer, WEB, "invalid_request", state=None)
    else:
        assert_page(answer, 400)


async def test_par_needs_client_authentication(world: World) -> None:
    form = {"response_type": "code", "client_id": "web", "redirect_uri": WEB, "code_challenge": "x" * 43}
    assert_token_error(await world.h.client.post("/par", data=form), 401, "invalid_client")
    answer = await world.h.client.post("/par", data=form, auth=("web", "wrong-secret-wrong-secret"))
    assert_token_error(answer, 401, "invalid_client")


async def test_require_par_client_without_par_is_invalid_request(world: World) -> None:
    answer = await world.browser().get(authorize("par-only", WEB))
    assert_error_redirect(answer, WEB, "invalid_request")


# --- 9. oversized input -----------------------------------------------------------------------------
async def test_oversized_parameters_are_4xx(world: World) -> None:
    big_query = authorize() + "&pad=" + "p" * 100_000
    for what, answer in [
        ("20 KB state", await world.browser().get(authorize(state="s" * 20_000))),
        ("20 KB nonce", await world.browser().get(authorize(nonce="n" * 20_000))),
        ("20 KB login_hint", await world.browser().get(authorize(login_hint="h" * 20_000))),
        (
            "100 KB form",
            await world.browser().post("/authorize", content=urlsplit(big_query).query, headers=_FORM),
        ),
    ]:
        assert 400 <= answer.status_code < 500, f"{what}: {answer.status_code}"
        assert len(answer.headers.get("location", "")) < 8_000, what


def _raw_get(base: str, target: str) -> bytes:
    """A GET over a plain socket (httpx refuses URLs over 64 KiB): the status line, or b"" if closed."""
    host, port = urlsplit(base).hostname, urlsplit(base).port
    assert host is not None and port is not None
    with socket.create_connection((host, port), timeout=30) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        try:
            while chunk := conn.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    return data.split(b"\r\n", 1)[0]


@pytest.mark.slow
def test_oversized_query_on_a_live_server(live_server: LiveServer) -> None:
    """The 100 KB request line is refused by the web server (CONTRACT.md: oversized headers → 431 or a
    closed connection); the 20 KB state by the service."""
    add_browser_client(live_server.env, "spa", LOOPBACK, kind="public", first_party=True)
    url = authorize().replace(ISSUER, "")
    assert _raw_get(live_server.url, url).startswith(b"HTTP/1.1 200"), "the control: a normal request"
    for what, target in [
        ("100 KB query", url + "&pad=" + "p" * 100_000),
        ("20 KB state", authorize(state="s" * 20_000).replace(ISSUER, "")),
    ]:
        status = _raw_get(live_server.url, target)
        assert status == b"" or re.match(rb"HTTP/1\.1 4\d\d ", status), f"{what}: {status!r}"


# --- 10. the login form: one answer for a wrong password and an unknown user ------------------------
_NONCE = re.compile(r'nonce="[^"]*"|nonce-[A-Za-z0-9+/=_-]+')


def _normalized(answer: httpx.Response, username: str) -> str:
    """The page with its random parts blanked: hidden values, a CSP nonce, the name typed in."""
    text = answer.text
    for value in page_form(answer).hidden.values():
        if value:
            text = text.replace(value, "HIDDEN")
    return _NONCE.sub("nonce", text).replace(username, "USERNAME")


async def test_wrong_password_and_unknown_user_get_the_same_page(world: World) -> None:
    answers = []
    for username, password in (("alice", "wrong-password-1"), ("malory", "wrong-password-1")):
        browser = world.browser()
        page, form = await login_page(browser)
        answer = await post_form(browser, page, form, {**form.fields, **_credentials(username, password)})
        assert_page(answer, 200)
        assert page_form(answer).is_login
        answers.append((answer, username))
    (first, user1), (second, user2) = answers
    assert _normalized(first, user1) == _normalized(second, user2)
    skip = {"date", "set-cookie", "content-security-policy", "x-request-id", "content-length"}
    assert {k: v for k, v in first.headers.items() if k not in skip} == {
        k: v for k, v in second.headers.items() if k not in skip
    }
    # the same form fields, fresh values
    assert set(page_form(first).fields) == set(page_form(second).fields)


# --- 11. the login limits on the hosted form ----------------------------------------------------------
async def test_login_limit_on_the_hosted_form(world_factory: Callable[..., Any]) -> None:
    world = await world_factory(login_max_per_user=LIMIT, login_max_per_address=100_000)
    browser = world.browser()
    page, form = await login_page(browser)
    for attempt in range(LIMIT):
        answer = await post_form(
            browser, page, form, {**form.fields, **_credentials(password=f"guess-{attempt}-x")}
        )
        assert_page(answer, 200)
        page, form = answer, page_form(answer)
        assert form.is_login, f"attempt {attempt}"
    limited = await post_form(browser, page, form, {**form.fields, **_credentials()})
    assert_page(limited, 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert not _session_cookie_set(limited)
    # the password grant shares the counter
    token = await world.h.login("alice", PASSWORD)
    assert token.status_code == 429, token.text


async def test_parallel_wrong_passwords_on_the_form_check_at_most_the_limit(
    world_factory: Callable[..., Any],
) -> None:
    world = await world_factory(login_max_per_user=LIMIT, login_max_per_address=100_000)
    burst = 20
    forms = []
    for _ in range(burst):
        browser = world.browser()
        page, form = await login_page(browser)
        forms.append((browser, page, form))
    before = await _failed_logins(world.h)
    gate = asyncio.Event()

    async def attempt(index: int) -> httpx.Response:
        browser, page, form = forms[index]
        await gate.wait()
        return await post_form(
            browser, page, form, {**form.fields, **_credentials(password=f"guess-{index}-x")}
        )

    tasks = [asyncio.ensure_future(attempt(i)) for i in range(burst)]
    await asyncio.sleep(0)
    gate.set()
    answers = await asyncio.gather(*tasks)
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {200, 429}, statuses
    for answer in answers:
        assert_page(answer, answer.status_code)
    checked = statuses.count(200)
    failed = await _failed_logins(world.h) - before
    assert checked <= LIMIT, f"{checked} of {burst} passwords were checked: {statuses}"
    assert failed <= LIMIT, f"{failed} failed logins counted"
    assert statuses.count(429) >= burst - LIMIT


# --- 12. userinfo refusals ------------------------------------------------------------------------
async def test_userinfo_refusals(world: World) -> None:
    client = world.h.client
    for method in ("GET", "POST"):
        none = await client.request(method, "/userinfo")
        assert none.status_code == 401
        assert none.headers["www-authenticate"].startswith("Bearer")
        garbage = await client.request(method, "/userinfo", headers={"Authorization": "Bearer x.y.z"})
        assert garbage.status_code == 401
        assert 'error="invalid_token"' in garbage.headers["www-authenticate"]
    password_token = (await world.h.login("alice", PASSWORD)).json()["access_token"]
    assert "openid" not in claims_of(password_token).get("scope", "").split()
    answer = await client.get("/userinfo", headers={"Authorization": f"Bearer {password_token}"})
    assert answer.status_code == 403
    assert "insufficient_scope" in answer.headers["www-authenticate"]


# --- 13. sessions, consent and the trust rules ---------------------------------------------------
async def test_a_planted_session_cookie_is_replaced_at_login(world: World) -> None:
    browser = world.browser()
    browser.cookies.set("authsvc_session", "attacker-chosen-session-id", domain="127.0.0.1")
    page, form = await login_page(browser)
    answer = await post_form(browser, page, form, {**form.fields, **_credentials()})
    assert answer.status_code == 303, answer.text[:300]
    cookies = [c for c in answer.headers.get_list("set-cookie") if c.startswith("authsvc_session=")]
    assert cookies, "no session cookie set at login"
    assert "attacker-chosen-session-id" not in cookies[0]


async def test_consent_cannot_be_skipped_by_posting_it_to_the_login_step(world: World) -> None:
    browser = world.browser()
    page, form = await login_page(browser, authorize("web", WEB))
    answer = await post_form(browser, page, form, {**form.fields, "consent": "allow"})
    assert answer.status_code < 500
    assert "code=" not in answer.headers.get("location", ""), answer.headers["location"]
    answer = await post_form(browser, page, form, {**form.fields, "username": "alice", "consent": "allow"})
    assert answer.status_code < 500
    assert "code=" not in answer.headers.get("location", ""), answer.headers["location"]


async def test_consent_is_remembered_for_the_scopes_granted_only(world: World) -> None:
    browser = world.browser()
    await world.code(browser, "web", WEB, scope="openid")  # login + consent to openid
    same = await browser.get(authorize("web", WEB, scope="openid"))
    assert same.status_code == 303 and "code" in callback_query(same.headers["location"]), same.text[:300]
    more = await browser.get(authorize("web", WEB, scope="openid email"))
    assert_page(more, 200)
    assert page_form(more).is_consent, "consent for a wider scope was assumed"
    asked = await browser.get(authorize("web", WEB, scope="openid", prompt="consent"))
    assert_page(asked, 200)
    assert page_form(asked).is_consent, "prompt=consent did not ask"


async def test_a_denied_consent_is_not_remembered(world: World) -> None:
    browser = world.browser()
    query = await sign_in(browser, authorize("web", WEB), "alice", PASSWORD, consent="deny")
    assert query.get("error") == "access_denied", query
    again = await browser.get(authorize("web", WEB))
    assert_page(again, 200)
    assert page_form(again).is_consent


async def test_prompt_login_and_max_age_ask_for_the_password_again(world: World) -> None:
    browser = world.browser()
    await world.code(browser)
    for params in ({"prompt": "login"}, {"max_age": "5"}):
        world.h.clock.advance(10)
        answer = await browser.get(authorize(**params))
        assert_page(answer, 200)
        assert page_form(answer).is_login, f"{params}: no login page"
    answer = await browser.get(authorize(max_age="3600"))  # recent enough: no page
    assert answer.status_code == 303, answer.text[:300]
    world.h.clock.advance(10)
    answer = await browser.get(authorize(max_age="5", prompt="none"))
    assert_error_redirect(answer, LOOP, "login_required")


async def test_the_sso_session_ends_after_its_lifetime(world: World) -> None:
    browser = world.browser()
    await world.code(browser)
    world.h.clock.advance(world.h.settings.sso_session_ttl + 1)
    answer = await browser.get(authorize())
    assert_page(answer, 200)
    assert page_form(answer).is_login, "an expired browser session still signs in"
    answer = await browser.get(authorize(prompt="none"))
    assert_error_redirect(answer, LOOP, "login_required")


async def test_a_pending_request_expires(world: World) -> None:
    browser = world.browser()
    page, form = await login_page(browser)
    world.h.clock.advance(601)
    answer = await post_form(browser, page, form, {**form.fields, **_credentials()})
    assert 300 <= answer.status_code < 500, answer.status_code
    assert "code=" not in answer.headers.get("location", ""), "a code from a request older than 600 s"


async def test_a_disabled_user_gets_no_code_and_redeems_none(world: World) -> None:
    browser = world.browser()
    code, verifier = await world.code(browser)
    await world.h.services.users.set_disabled("alice", True, world.h.clock.now())
    assert_token_error(await world.redeem(code, verifier, LOOP), 400, "invalid_grant")
    answer = await browser.get(authorize())  # the browser session of a disabled user
    assert answer.status_code < 500
    assert "code=" not in answer.headers.get("location", ""), "a disabled user's session gave a code"
    fresh = world.browser()
    page, form = await login_page(fresh)
    answer = await post_form(fresh, page, form, {**form.fields, **_credentials()})
    assert answer.status_code in (200, 429), answer.status_code  # the generic failure
    assert "location" not in answer.headers


async def test_a_removed_client_redeems_no_code(world: World, tmp_path: Path) -> None:
    code, verifier = await world.code(client_id="web", redirect_uri=WEB)
    with contextlib.chdir(tmp_path):
        from tests.trust_support import cli_ok

        cli_ok(cli_env(tmp_path), "clients", "remove", "web")
    answer = await world.redeem(code, verifier, WEB, "web")
    assert answer.status_code in (400, 401), answer.text
    assert answer.json()["error"] in ("invalid_grant", "invalid_client")


async def test_state_comes_back_exactly(world: World) -> None:
    state = "a b&c=d/é?#%20+\u2603"
    query = await sign_in(world.browser(), authorize(state=state), "alice", PASSWORD)
    assert query["state"] == state
    answer = await world.browser().get(authorize(state=state, code_challenge_method="plain"))
    assert assert_error_redirect(answer, LOOP, "invalid_request", state=state)["state"] == state


async def test_refresh_cannot_widen_the_granted_scope(world: World) -> None:
    tokens = await world.tokens("spa", LOOP, scope="openid")
    answer = await world.h.refresh(tokens["refresh_token"], client_id="spa", scope="openid email")
    assert_token_error(answer, 400, "invalid_scope")


async def test_id_and_refresh_tokens_are_not_access_tokens(world: World) -> None:
    tokens = await world.tokens("spa", LOOP, scope="openid profile")
    for name in ("id_token", "refresh_token"):
        bearer = {"Authorization": f"Bearer {tokens[name]}"}
        for path in ("/userinfo", "/users/me"):
            answer = await world.h.client.get(path, headers=bearer)
            assert answer.status_code == 401, f"{name} accepted at {path}: {answer.status_code}"
    good = await world.h.client.get(
        "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert good.status_code == 200, good.text
    introspected = await world.h.client.post(
        "/introspect", data={"token": tokens["id_token"]}, auth=("web", world.secrets["web"])
    )
    assert introspected.json() == {"active": False}, "an ID token introspects as active"


async def test_only_an_id_token_is_a_logout_hint(world: World) -> None:
    browser, tokens = await _signed_in_web(world)
    client_credentials = await world.h.client.post(
        "/token", data={"grant_type": "client_credentials"}, auth=("m2m", world.secrets["m2m"])
    )
    id_token = tokens["id_token"]
    tampered = id_token[:-4] + ("AAAA" if not id_token.endswith("AAAA") else "BBBB")
    for name, token in (
        ("access token", tokens["access_token"]),
        ("refresh token", tokens["refresh_token"]),
        ("client_credentials token", client_credentials.json()["access_token"]),
        ("tampered ID token", tampered),
        ("ID token without signature", id_token.rsplit(".", 1)[0] + "."),
    ):
        answer = await browser.get(
            "/logout", params={"id_token_hint": token, "post_logout_redirect_uri": WEB_LOGOUT}
        )
        assert answer.status_code == 400, f"{name}: {answer.status_code} {answer.headers.get('location')}"
        assert_page(answer, 400)
    refreshed = await world.h.client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=("web", world.secrets["web"]),
    )
    assert refreshed.status_code == 200, "a refused hint signed the user out"


async def test_parallel_redemptions_of_one_code_give_at_most_one_set_of_live_tokens(world: World) -> None:
    code, verifier = await world.code()
    gate = asyncio.Event()

    async def redeem() -> httpx.Response:
        await gate.wait()
        return await world.redeem(code, verifier, LOOP)

    tasks = [asyncio.ensure_future(redeem()) for _ in range(10)]
    await asyncio.sleep(0)
    gate.set()
    answers = await asyncio.gather(*tasks)
    won = [a for a in answers if a.status_code == 200]
    assert len(won) <= 1, f"{len(won)} redemptions of one code succeeded"
    for answer in answers:
        if answer.status_code != 200:
            assert_token_error(answer, 400, "invalid_grant")
    if won:  # the others were second redemptions: the winner's tokens are revoked
        refreshed = await world.h.refresh(won[0].json()["refresh_token"], client_id="spa")
        assert_token_error(refreshed, 400, "invalid_grant")
        assert (await world.h.me(won[0].json()["access_token"])).status_code == 401


async def test_a_verifier_outside_rfc7636_is_refused_even_when_its_hash_matches(world: World) -> None:
    import base64
    import hashlib

    for verifier in ("a" * 42, "a" * 129, "!" * 50, "a" * 42 + " "):
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = await sign_in(world.browser(), authorize(challenge=challenge), "alice", PASSWORD)
        answer = await world.redeem(query["code"], verifier, LOOP)
        assert answer.status_code == 400, f"verifier {verifier!r}: {answer.status_code}"
        assert answer.json()["error"] in ("invalid_request", "invalid_grant"), answer.text


def test_cli_refuses_redirect_uris_rfc6749_forbids(tmp_path: Path) -> None:
    """RFC 6749 §3.1.2: a redirection endpoint is an absolute URI without a fragment."""
    from tests.trust_support import assert_one_line_error

    env = cli_env(tmp_path)
    create_database(env)
    for index, uri in enumerate(("https://rp.example/cb#fragment", "/cb", "rp.example/cb", "")):
        args = ("clients", "add", f"bad{index}", "--public", "--grant", "authorization_code")
        result = run_cli(*args, "--redirect-uri", uri, env=env)
        assert_one_line_error(result, f"--redirect-uri {uri!r}")
    ok = run_cli(
        "clients", "add", "good", "--public", "--grant", "authorization_code", "--redirect-uri", WEB, env=env
    )
    assert ok.returncode == 0, ok.stderr


# --- 14. CORS ------------------------------------------------------------------------------------------
async def test_cors_only_for_registered_origins_and_never_with_credentials(world: World) -> None:
    tokens = await world.tokens("spa", LOOP)
    client = world.h.client
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    calls = {
        "/token": lambda h: client.post(
            "/token", data={"grant_type": "refresh_token", "refresh_token": "x"}, headers=h
        ),
        "/revoke": lambda h: client.post("/revoke", data={"token": "x", "client_id": "spa"}, headers=h),
        "/userinfo": lambda h: client.get("/userinfo", headers={**bearer, **h}),
    }
    for path, call in calls.items():
        answer = await call({"Origin": APP_ORIGIN})
        assert answer.headers.get("access-control-allow-origin") == APP_ORIGIN, (path, answer.headers)
        assert "origin" in answer.headers.get("vary", "").lower(), (path, answer.headers)
        assert answer.headers.get("access-control-allow-credentials") != "true", path
        preflight = await client.options(
            path,
            headers={
                "Origin": APP_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, dpop, content-type",
            },
        )
        assert preflight.status_code == 204, (path, preflight.status_code, preflight.text)
        assert preflight.headers.get("access-control-allow-origin") == APP_ORIGIN, path
        allowed = {
            h.strip().lower() for h in preflight.headers.get("access-control-allow-headers", "").split(",")
        }
        assert {"authorization", "dpop", "content-type"} <= allowed, (path, allowed)
        assert "POST" in preflight.headers.get("access-control-allow-methods", ""), path
        assert preflight.headers.get("access-control-allow-credentials") != "true", path
        for origin in (
            "https://evil.example",
            "https://app.example.evil.example",
            "https://evilapp.example",
            "http://app.example",
            "https://app.example:8443",
            "null",
            APP_ORIGIN + "/",
        ):
            answer = await call({"Origin": origin})
            assert answer.status_code < 500, (path, origin)
            assert answer.headers.get("access-control-allow-origin") in (None,), (
                path,
                origin,
                answer.headers,
            )
            preflight = await client.options(
                path, headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
            )
            assert preflight.status_code < 500, (path, origin)
            assert "access-control-allow-origin" not in preflight.headers, (path, origin)
    for path in ("/introspect",):  # for resource servers, not browsers
        answer = await client.post(path, data={"token": "x"}, headers={"Origin": APP_ORIGIN})
        assert "access-control-allow-origin" not in answer.headers, path
    for path in ("/.well-known/jwks.json", "/.well-known/openid-configuration"):
        answer = await client.get(path, headers={"Origin": "https://anyone.example"})
        assert answer.headers.get("access-control-allow-origin") == "*", path
    page = await world.browser().get(authorize(), headers={"Origin": APP_ORIGIN})
    assert "access-control-allow-origin" not in page.headers, "the hosted pages are not for scripts"
