"""An issuer with a path (``AUTHSVC_ISSUER=https://example.com/auth``), end to end on the ASGI app.

Every endpoint is served under the path; the RFC 8414 document at
``/.well-known/oauth-authorization-server/auth`` (RFC 8414 §3: inserted) and
the OpenID one at ``/auth/.well-known/openid-configuration`` (OpenID Connect
Discovery §4: appended); nothing the service builds from the issuer and a
request path is doubled or lost: metadata URLs, the sign-in page's form, the
logout page's form, DPoP's ``htu``, cookies.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Callable
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from authsvc.dpop import access_token_hash
from authsvc.jose import registry_for
from authsvc.verifier import Verifier
from tests.authorize_support import add_browser_client, authorize_params, callback, form_of, pkce
from tests.support import AppHarness, claims_of

ORIGIN = "https://example.com"
ISSUER = ORIGIN + "/auth"
RFC8414 = "/.well-known/oauth-authorization-server/auth"
OPENID = "/auth/.well-known/openid-configuration"
PASSWORD = {"grant_type": "password", "username": "alice", "password": "correct horse"}


async def _harness(factory: Callable[..., Any], issuer: str = ISSUER, **overrides: Any) -> AppHarness:
    h: AppHarness = await factory(issuer=issuer, **overrides)
    origin = issuer.rsplit("/", 1)[0]
    # The client talks to the issuer's origin; the paths below name the prefix themselves.
    h.client = httpx.AsyncClient(transport=httpx.ASGITransport(h.app), base_url=origin)
    await h.add_user()
    return h


@pytest.fixture
async def h(harness_factory: Callable[..., Any]) -> AsyncIterator[AppHarness]:
    harness = await _harness(harness_factory)
    async with harness.client:
        yield harness


async def test_metadata_at_both_well_known_places_names_urls_under_the_path(h: AppHarness) -> None:
    inserted = await h.client.get(RFC8414)
    appended = await h.client.get(OPENID)
    assert inserted.status_code == appended.status_code == 200, (inserted.text, appended.text)
    document = inserted.json()
    assert appended.json() == document
    assert document["issuer"] == ISSUER
    urls = {name: value for name, value in document.items() if name.endswith(("_endpoint", "_uri"))}
    assert urls["token_endpoint"] == ISSUER + "/token"
    assert urls["authorization_endpoint"] == ISSUER + "/authorize"
    assert urls["jwks_uri"] == ISSUER + "/.well-known/jwks.json"
    for name, url in urls.items():
        assert url.startswith(ISSUER + "/") and "/auth/auth/" not in url, (name, url)


@pytest.mark.parametrize(
    "path",
    [
        "/token",  # the prefix lost
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
        "/auth/auth/token",  # the prefix doubled
        "/auth",
        "/auth/",
        "/authx/token",
        "/.well-known/oauth-authorization-server/auth/",
        "/.well-known/oauth-authorization-server/other",
        "/healthz",
        "/docs",
    ],
)
async def test_paths_outside_the_issuer_path_are_404(h: AppHarness, path: str) -> None:
    for method in ("GET", "POST"):
        answer = await h.client.request(method, path, data=PASSWORD if method == "POST" else None)
        assert answer.status_code == 404, (method, path, answer.status_code)
        assert answer.json()["error"] == "not_found"
        assert "location" not in answer.headers


async def test_token_jwks_and_resources_under_the_path(h: AppHarness) -> None:
    answer = await h.client.post("/auth/token", data=PASSWORD)
    assert answer.status_code == 200, answer.text
    access = answer.json()["access_token"]
    assert claims_of(access)["iss"] == ISSUER
    # A resource server's verifier, given only the issuer, finds the keys at issuer + /.well-known/jwks.json.
    async with Verifier(ISSUER, h.settings.default_audience, http=h.client, clock=h.clock.now) as verifier:
        assert verifier.jwks_url == ISSUER + "/.well-known/jwks.json"
        claims = await verifier.verify(access)
    assert claims["sub"]
    me = await h.client.get("/auth/users/me", headers={"Authorization": f"Bearer {access}"})
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "alice"
    refreshed = await h.client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": answer.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    assert (await h.client.get("/auth/healthz")).status_code == 200


def _proof(key: ECKey, method: str, htu: str, now: float) -> str:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    body = {"jti": secrets.token_urlsafe(12), "htm": method, "htu": htu, "iat": int(now)}
    return jws.serialize_compact(header, json.dumps(body).encode(), key, registry=registry_for("ES256"))


async def test_dpop_htu_is_the_issuer_plus_the_route(h: AppHarness) -> None:
    key = ECKey.generate_key("P-256")
    now = h.clock.now()
    for wrong in (ORIGIN + "/token", ISSUER + "/auth/token"):  # the prefix lost, or doubled
        refused = await h.client.post(
            "/auth/token", data=PASSWORD, headers={"DPoP": _proof(key, "POST", wrong, now)}
        )
        assert refused.status_code == 400, (wrong, refused.text)
        assert refused.json()["error"] == "invalid_dpop_proof"
    bound = await h.client.post(
        "/auth/token", data=PASSWORD, headers={"DPoP": _proof(key, "POST", ISSUER + "/token", now)}
    )
    assert bound.status_code == 200, bound.text
    assert bound.json()["token_type"] == "DPoP"
    access = bound.json()["access_token"]
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    body = {
        "jti": secrets.token_urlsafe(12),
        "htm": "GET",
        "htu": ISSUER + "/users/me",
        "iat": int(now),
        "ath": access_token_hash(access),
    }
    me_proof = jws.serialize_compact(header, json.dumps(body).encode(), key, registry=registry_for("ES256"))
    me = await h.client.get("/auth/users/me", headers={"Authorization": "DPoP " + access, "DPoP": me_proof})
    assert me.status_code == 200, me.text


def _cookie_paths(response: httpx.Response) -> dict[str, str]:
    paths = {}
    for line in response.headers.get_list("set-cookie"):
        cookie = SimpleCookie()
        cookie.load(line)
        for name, morsel in cookie.items():
            paths[name] = morsel["path"]
    return paths


async def _sign_in(h: AppHarness, base_path: str) -> tuple[httpx.Response, httpx.Response]:
    """The login page under the prefix, its form posted where it says: (page, answer)."""
    await add_browser_client(h, "web", first_party=True)
    verifier, challenge = pkce()
    page = await h.client.get(base_path + "/authorize", params=authorize_params("web", challenge))
    assert page.status_code == 200, page.text
    form = form_of(page)
    assert form.action == base_path + "/authorize"
    answer = await h.client.post(
        form.action, data={**form.hidden, "username": "alice", "password": "correct horse"}
    )
    code = callback(answer)
    assert code["iss"] == h.settings.issuer
    redeemed = await h.client.post(
        base_path + "/token",
        data={
            "grant_type": "authorization_code",
            "code": code["code"],
            "redirect_uri": authorize_params("web", challenge)["redirect_uri"],
            "code_verifier": verifier,
            "client_id": "web",
        },
    )
    assert redeemed.status_code == 200, redeemed.text
    assert claims_of(redeemed.json()["id_token"])["iss"] == h.settings.issuer
    return page, answer


async def test_browser_sign_in_posts_under_the_path_with_host_cookies(h: AppHarness) -> None:
    page, answer = await _sign_in(h, "/auth")
    # https: __Host- cookies, which must have Path=/ (and are sent to the prefix's pages too).
    assert _cookie_paths(page) == {"__Host-authsvc_csrf": "/"}
    assert _cookie_paths(answer)["__Host-authsvc_session"] == "/"
    # Signed in: the next request is answered from the session, without the login page.
    _verifier, challenge = pkce()
    again = await h.client.get("/auth/authorize", params=authorize_params("web", challenge))
    assert callback(again)["code"]


async def test_on_plain_http_cookies_are_scoped_to_the_path(harness_factory: Callable[..., Any]) -> None:
    h = await _harness(harness_factory, issuer="http://127.0.0.1:9000/tenant-a")
    async with h.client:
        page, answer = await _sign_in(h, "/tenant-a")
        assert _cookie_paths(page) == {"authsvc_csrf": "/tenant-a"}
        assert _cookie_paths(answer)["authsvc_session"] == "/tenant-a"
        confirm = await h.client.get("/tenant-a/logout")
        assert confirm.status_code == 200, confirm.text
        assert form_of(confirm).action == "/tenant-a/logout"
        logged_out = await h.client.post("/tenant-a/logout", data=form_of(confirm).hidden)
        assert logged_out.status_code == 200, logged_out.text
        assert _cookie_paths(logged_out)["authsvc_session"] == "/tenant-a"


async def test_logout_page_posts_under_the_path(h: AppHarness) -> None:
    confirm = await h.client.get("/auth/logout")
    assert confirm.status_code == 200, confirm.text
    assert form_of(confirm).action == "/auth/logout"


async def test_openapi_document_names_the_path_as_its_server(h: AppHarness) -> None:
    document = (await h.client.get("/auth/openapi.json")).json()
    assert document["servers"] == [{"url": "/auth"}]
    assert "/token" in document["paths"]


async def test_docs_are_off_by_default_and_served_under_the_path_when_on(
    harness_factory: Callable[..., Any],
) -> None:
    h = await _harness(harness_factory, docs=True)
    async with h.client:
        page = await h.client.get("/auth/docs")
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "script-src 'self' 'nonce-" in policy
        nonce = policy.split("'nonce-", 1)[1].split("'", 1)[0]
        assert f'<script nonce="{nonce}">' in page.text
        assert 'href="docs/swagger-ui.css"' in page.text  # relative: under the prefix
        script = await h.client.get("/auth/docs/swagger-ui-bundle.js")
        assert script.status_code == 200 and "SwaggerUIBundle" in script.text
        assert script.headers["content-type"].startswith("text/javascript")
        assert (await h.client.get("/auth/docs/swagger-ui.css")).status_code == 200
        assert (await h.client.get("/docs")).status_code == 404
        assert (await h.client.get("/auth/docs/index.html")).status_code == 404


async def test_admin_api_verifies_tokens_of_a_path_issuer(h: AppHarness) -> None:
    # The admin API checks authsvc's own tokens with authsvc.verifier, which fetches the JWKS
    # at issuer + /.well-known/jwks.json from the public app: under the prefix.
    await h.add_user("root", "root password!", scopes="authsvc:admin")
    login = await h.client.post(
        "/auth/token", data={**PASSWORD, "username": "root", "password": "root password!"}
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(h.app.admin),
        base_url="http://127.0.0.1:9001",
        headers={"Authorization": f"Bearer {token}"},
    ) as admin:
        keys = await admin.get("/admin/keys")
        assert keys.status_code == 200, keys.text
        assert keys.json()["keys"]
