"""Every response that carries tokens or personal data has ``Cache-Control: no-store``.

Finding 13 of issue #13: ``GET /users/me`` (a user's name, e-mail and full name)
had no ``Cache-Control`` at all, so a shared cache or the browser's disk could
keep it. This module walks every route the app declares and sorts it: either
its answers may carry tokens or personal data — then every kind of answer it
gives (success and each error) carries ``Cache-Control: no-store`` and
``Pragma: no-cache``, as the token endpoint's do (RFC 6749 §5.1) — or it
serves public, non-personal documents. A new route that is in neither list
fails the walk until someone decides which it is.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.authorize_support import add_browser_client, authorize_params, browser_tokens, form_of, pkce
from tests.support import AppHarness
from tests.test_fault_injection import Outage

#: Routes whose answers carry tokens or personal data (or say something about one).
PRIVATE = {
    ("POST", "/token"),
    ("POST", "/revoke"),
    ("POST", "/introspect"),
    ("GET", "/users/me"),
    ("HEAD", "/users/me"),
    # Browser sign-in: pages about a sign-in, codes in redirects, claims about the user.
    *(
        (method, path)
        for method in ("GET", "HEAD", "POST")
        for path in ("/authorize", "/userinfo", "/logout")
    ),
    ("POST", "/par"),
}
#: Routes whose answers are public documents with nothing about any user or token.
PUBLIC = {
    *(
        (method, path)
        for method in ("GET", "HEAD")  # Starlette answers HEAD wherever it answers GET
        for path in (
            "/.well-known/jwks.json",
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
        )
    )
}


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def test_every_route_is_sorted(harness: AppHarness) -> None:
    """Every route the running app answers (the one routing table, and the OpenAPI document)."""
    app = harness.app
    declared = {(method, route.path) for route in app.routes for method in route.methods}
    assert declared == PRIVATE | PUBLIC, "sort the new route into PRIVATE or PUBLIC"
    assert not PRIVATE & PUBLIC


Probe = Callable[[AppHarness], Awaitable[httpx.Response]]


async def _tokens(h: AppHarness) -> dict[str, str]:
    response = await h.login()
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _rs(h: AppHarness) -> dict[str, str]:
    return _basic("rs", await h.add_service_client("rs", audiences=("authsvc",)))


# One probe per kind of answer each private route gives: (route, status, probe).
async def _token_ok(h: AppHarness) -> httpx.Response:
    return await h.login()


async def _token_refresh_ok(h: AppHarness) -> httpx.Response:
    return await h.refresh((await _tokens(h))["refresh_token"])


async def _token_client_credentials_ok(h: AppHarness) -> httpx.Response:
    headers = await _rs(h)
    return await h.client.post("/token", data={"grant_type": "client_credentials"}, headers=headers)


async def _token_invalid_request(h: AppHarness) -> httpx.Response:
    return await h.client.post("/token", data={"username": "alice"})


async def _token_invalid_grant(h: AppHarness) -> httpx.Response:
    return await h.login(password="wrong password")


async def _token_invalid_client(h: AppHarness) -> httpx.Response:
    return await h.client.post("/token", data={"grant_type": "client_credentials"}, headers=_basic("x", "y"))


async def _token_too_large(h: AppHarness) -> httpx.Response:
    return await h.client.post("/token", content=b"a=" + b"x" * 70_000, headers={"Content-Type": "x"})


async def _token_rate_limited(h: AppHarness) -> httpx.Response:
    for _ in range(h.settings.login_max_per_user):
        await h.login(password="wrong password")
    return await h.login(password="wrong password")


async def _revoke_ok(h: AppHarness) -> httpx.Response:
    return await h.client.post(
        "/revoke", data={"token": (await _tokens(h))["refresh_token"], "client_id": "cli"}
    )


async def _revoke_invalid_client(h: AppHarness) -> httpx.Response:
    return await h.client.post("/revoke", data={"token": "x"}, headers=_basic("x", "y"))


async def _revoke_invalid_request(h: AppHarness) -> httpx.Response:
    return await h.client.post("/revoke", data={"client_id": "cli"})


async def _introspect_active(h: AppHarness) -> httpx.Response:
    token = (await _tokens(h))["access_token"]
    return await h.client.post("/introspect", data={"token": token}, headers=await _rs(h))


async def _introspect_inactive(h: AppHarness) -> httpx.Response:
    return await h.client.post("/introspect", data={"token": "garbage"}, headers=await _rs(h))


async def _introspect_invalid_client(h: AppHarness) -> httpx.Response:
    return await h.client.post("/introspect", data={"token": "x"})


async def _me_ok(h: AppHarness) -> httpx.Response:
    return await h.me((await _tokens(h))["access_token"])


async def _me_no_token(h: AppHarness) -> httpx.Response:
    return await h.client.get("/users/me")


async def _me_bad_token(h: AppHarness) -> httpx.Response:
    return await h.me("not.a.token")


async def _me_revoked(h: AppHarness) -> httpx.Response:
    tokens = await _tokens(h)
    await h.client.post("/revoke", data={"token": tokens["refresh_token"], "client_id": "cli"})
    return await h.me(tokens["access_token"])


async def _me_database_down(h: AppHarness) -> httpx.Response:
    token = (await _tokens(h))["access_token"]
    outage = Outage(h.services)
    await outage.start()
    try:
        return await h.me(token)
    finally:
        outage.stop()
        outage.remove()


async def _me_head_ok(h: AppHarness) -> httpx.Response:
    token = (await _tokens(h))["access_token"]
    return await h.client.head("/users/me", headers={"Authorization": f"Bearer {token}"})


async def _me_head_no_token(h: AppHarness) -> httpx.Response:
    return await h.client.head("/users/me")


async def _browser(h: AppHarness) -> None:
    await add_browser_client(h, "web", first_party=True)


def _authorize(**extra: str) -> dict[str, str]:
    return authorize_params("web", pkce()[1], **extra)


async def _authorize_login_page(h: AppHarness) -> httpx.Response:
    await _browser(h)
    return await h.client.get("/authorize", params=_authorize())


async def _authorize_head(h: AppHarness) -> httpx.Response:
    await _browser(h)
    return await h.client.head("/authorize", params=_authorize())


async def _authorize_head_untrusted(h: AppHarness) -> httpx.Response:
    return await h.client.head("/authorize", params={"client_id": "nobody"})


async def _authorize_untrusted(h: AppHarness) -> httpx.Response:
    return await h.client.get("/authorize", params={"client_id": "nobody"})


async def _authorize_code(h: AppHarness) -> httpx.Response:
    page = await _authorize_login_page(h)
    return await h.client.post(
        "/authorize", data={**form_of(page).hidden, "username": "alice", "password": "correct horse"}
    )


async def _authorize_post_no_csrf(h: AppHarness) -> httpx.Response:
    return await h.client.post("/authorize", data={"interaction": "x", "username": "alice"})


async def _authorize_post_wrong_password(h: AppHarness) -> httpx.Response:
    page = await _authorize_login_page(h)
    return await h.client.post(
        "/authorize", data={**form_of(page).hidden, "username": "alice", "password": "wrong password"}
    )


async def _browser_tokens(h: AppHarness) -> dict[str, str]:
    await _browser(h)
    return await browser_tokens(h, "web")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _userinfo_ok(h: AppHarness) -> httpx.Response:
    return await h.client.get("/userinfo", headers=_bearer((await _browser_tokens(h))["access_token"]))


async def _userinfo_post_ok(h: AppHarness) -> httpx.Response:
    return await h.client.post("/userinfo", headers=_bearer((await _browser_tokens(h))["access_token"]))


async def _userinfo_head_ok(h: AppHarness) -> httpx.Response:
    return await h.client.head("/userinfo", headers=_bearer((await _browser_tokens(h))["access_token"]))


async def _userinfo_no_token(h: AppHarness) -> httpx.Response:
    return await h.client.get("/userinfo")


async def _userinfo_post_no_token(h: AppHarness) -> httpx.Response:
    return await h.client.post("/userinfo")


async def _userinfo_head_no_token(h: AppHarness) -> httpx.Response:
    return await h.client.head("/userinfo")


async def _logout_confirm(h: AppHarness) -> httpx.Response:
    return await h.client.get("/logout")


async def _logout_head(h: AppHarness) -> httpx.Response:
    return await h.client.head("/logout")


async def _logout_bad_hint(h: AppHarness) -> httpx.Response:
    return await h.client.get("/logout", params={"id_token_hint": "not.a.token"})


async def _logout_head_bad_hint(h: AppHarness) -> httpx.Response:
    return await h.client.head("/logout", params={"id_token_hint": "not.a.token"})


async def _logout_post_ok(h: AppHarness) -> httpx.Response:
    page = await h.client.get("/logout")
    return await h.client.post("/logout", data=form_of(page).hidden)


async def _logout_post_no_csrf(h: AppHarness) -> httpx.Response:
    return await h.client.post("/logout", data={"logout": "yes"})


async def _par_ok(h: AppHarness) -> httpx.Response:
    await _browser(h)
    return await h.client.post("/par", data=_authorize())


async def _par_invalid(h: AppHarness) -> httpx.Response:
    await _browser(h)
    return await h.client.post("/par", data=_authorize(code_challenge_method="plain"))


PROBES: list[tuple[tuple[str, str], int, Probe]] = [
    (("POST", "/token"), 200, _token_ok),
    (("POST", "/token"), 200, _token_refresh_ok),
    (("POST", "/token"), 200, _token_client_credentials_ok),
    (("POST", "/token"), 400, _token_invalid_request),
    (("POST", "/token"), 400, _token_invalid_grant),
    (("POST", "/token"), 401, _token_invalid_client),
    (("POST", "/token"), 413, _token_too_large),
    (("POST", "/token"), 429, _token_rate_limited),
    (("POST", "/revoke"), 200, _revoke_ok),
    (("POST", "/revoke"), 401, _revoke_invalid_client),
    (("POST", "/revoke"), 400, _revoke_invalid_request),
    (("POST", "/introspect"), 200, _introspect_active),
    (("POST", "/introspect"), 200, _introspect_inactive),
    (("POST", "/introspect"), 401, _introspect_invalid_client),
    (("GET", "/users/me"), 200, _me_ok),
    (("GET", "/users/me"), 401, _me_no_token),
    (("GET", "/users/me"), 401, _me_bad_token),
    (("GET", "/users/me"), 401, _me_revoked),
    (("GET", "/users/me"), 503, _me_database_down),
    (("HEAD", "/users/me"), 200, _me_head_ok),
    (("HEAD", "/users/me"), 401, _me_head_no_token),
    (("GET", "/authorize"), 200, _authorize_login_page),
    (("GET", "/authorize"), 400, _authorize_untrusted),
    (("HEAD", "/authorize"), 200, _authorize_head),
    (("HEAD", "/authorize"), 400, _authorize_head_untrusted),
    (("POST", "/authorize"), 303, _authorize_code),
    (("POST", "/authorize"), 200, _authorize_post_wrong_password),
    (("POST", "/authorize"), 403, _authorize_post_no_csrf),
    (("GET", "/userinfo"), 200, _userinfo_ok),
    (("GET", "/userinfo"), 401, _userinfo_no_token),
    (("POST", "/userinfo"), 200, _userinfo_post_ok),
    (("POST", "/userinfo"), 401, _userinfo_post_no_token),
    (("HEAD", "/userinfo"), 200, _userinfo_head_ok),
    (("HEAD", "/userinfo"), 401, _userinfo_head_no_token),
    (("GET", "/logout"), 200, _logout_confirm),
    (("GET", "/logout"), 400, _logout_bad_hint),
    (("HEAD", "/logout"), 200, _logout_head),
    (("HEAD", "/logout"), 400, _logout_head_bad_hint),
    (("POST", "/logout"), 200, _logout_post_ok),
    (("POST", "/logout"), 403, _logout_post_no_csrf),
    (("POST", "/par"), 201, _par_ok),
    (("POST", "/par"), 400, _par_invalid),
]


def test_every_private_route_is_probed() -> None:
    probed = {route for route, _status, _probe in PROBES}
    assert probed == PRIVATE
    for route in PRIVATE:  # success and at least one error for each
        statuses = {status for r, status, _probe in PROBES if r == route}
        assert statuses & {200, 201, 303} and any(status >= 400 for status in statuses), route


@pytest.mark.parametrize(
    ("route", "status", "probe"), PROBES, ids=[f"{r[1]}-{s}-{p.__name__}" for r, s, p in PROBES]
)
async def test_private_answers_are_never_stored(
    harness: AppHarness, route: tuple[str, str], status: int, probe: Probe
) -> None:
    await harness.add_user()
    response = await probe(harness)
    assert response.status_code == status, response.text
    assert response.headers.get("cache-control") == "no-store", (route, status)
    assert response.headers.get("pragma") == "no-cache", (route, status)


async def test_public_documents_stay_cacheable(harness: AppHarness) -> None:
    """The other side of the line: the JWKS and the metadata must stay cacheable (CONTRACT: HTTP)."""
    for path in ("/.well-known/jwks.json", "/.well-known/oauth-authorization-server"):
        response = await harness.client.get(path)
        assert response.status_code == 200
        assert response.headers["cache-control"].startswith("public, max-age="), path
