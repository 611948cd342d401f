"""Browser sign-in with a real OAuth client library: Authlib's httpx client against a live server.

Authlib builds the authorization URL (PKCE S256, state, nonce), the hosted
pages are driven by ``tests/browser_flow.sign_in`` as a browser would, and
Authlib redeems the code and refreshes: as a public client, and as a
confidential one with client_secret_basic, client_secret_post and
private_key_jwt (its RFC 7523 ``PrivateKeyJWT``, key registered with
``--jwks``). The ID token is checked as a relying party does, with PyJWT and
the JWKS (signature, alg, typ, kid, iss, aud, nonce, sid, auth_time), and its
``at_hash`` is computed here: SHA-256 under RS256, SHA-512 under EdDSA. Every
test runs on an RS256 and on an EdDSA server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from joserfc.jwk import RSAKey

from tests.browser_flow import authorization_url, callback_query, pkce_pair, sign_in_location
from tests.oidc_support import (
    OIDC_SCOPES,
    PASSWORD,
    add_browser_client,
    add_user,
    at_hash,
    verify_id_token,
)
from tests.support import LiveServer, authlib_async_client, claims_of, start_server, stop_server
from tests.test_private_key_jwt import jwks_of, public_jwk

pytestmark = pytest.mark.slow

LOOPBACK = "http://127.0.0.1/callback"  # registered; used on another port (RFC 8252 §7.3)
WEB = "https://rp.example/callback"
REQUESTED = "openid profile email offline_access"


@pytest.fixture(scope="module", params=["RS256", "EdDSA"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    alg = request.param
    live = start_server(tmp_path_factory.mktemp(f"oidc-{alg}"), signing_alg=alg)
    try:
        add_user(live.env, "alice")
        yield live
    finally:
        stop_server(live)


@pytest.fixture(scope="module")
def metadata(server: LiveServer) -> dict[str, Any]:
    response = httpx.get(server.url + "/.well-known/openid-configuration")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def alg_of(server: LiveServer) -> str:
    return server.env["AUTHSVC_SIGNING_ALG"]


class Recorder:
    """The token endpoint's answers as Authlib received them (their headers are not in its token)."""

    def __init__(self) -> None:
        self.token_answers: list[httpx.Response] = []

    async def __call__(self, response: httpx.Response) -> None:
        if response.request.url.path == "/token":
            await response.aread()
            self.token_answers.append(response)


def check_token_answers(recorder: Recorder) -> None:
    assert recorder.token_answers
    for answer in recorder.token_answers:
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"


def check_id_token(
    server: LiveServer, metadata: dict[str, Any], token: dict[str, Any], client_id: str, nonce: str
) -> dict[str, Any]:
    alg = alg_of(server)
    assert alg in metadata["id_token_signing_alg_values_supported"]
    claims = verify_id_token(
        server.url, token["id_token"], client_id=client_id, alg=alg, jwks_uri=metadata["jwks_uri"]
    )
    access = claims_of(token["access_token"])
    assert claims["nonce"] == nonce
    assert claims["at_hash"] == at_hash(token["access_token"], alg), "at_hash is not the contract's hash"
    assert claims["sub"] == access["sub"], "the ID token and the access token name different users"
    assert claims["sid"] == access["sid"], "the ID token's sid is not the access token's"
    assert isinstance(claims["auth_time"], int)
    assert claims["auth_time"] <= claims["iat"] + 1
    assert abs(claims["auth_time"] - time.time()) < 120
    assert claims["exp"] > claims["iat"]
    return claims


async def check_userinfo(rp: Any, metadata: dict[str, Any], sub: str) -> None:
    answer = await rp.get(metadata["userinfo_endpoint"])
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json() == {
        "sub": sub,
        "preferred_username": "alice",
        "name": "Alice Example",
        "email": "alice@example.com",
        "email_verified": False,
    }


async def run_code_flow(
    server: LiveServer,
    metadata: dict[str, Any],
    rp: Any,
    client_id: str,
    redirect_uri: str,
    recorder: Recorder,
) -> None:
    """Authorization URL by Authlib, pages by the browser, code, ID token, userinfo, refresh."""
    verifier = generate_token(48)
    nonce = generate_token(20)
    url, state = rp.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    sent = callback_query(url)
    assert (sent["code_challenge_method"], sent["redirect_uri"]) == ("S256", redirect_uri)
    async with httpx.AsyncClient(timeout=30) as browser:
        location = await sign_in_location(browser, url, "alice", PASSWORD)
    assert location.split("?")[0] == redirect_uri
    back = callback_query(location)
    assert set(back) == {"code", "state", "iss"}, back
    assert (back["state"], back["iss"]) == (state, server.url)

    token = await rp.fetch_token(
        metadata["token_endpoint"], authorization_response=location, code_verifier=verifier
    )
    assert token["token_type"] == "Bearer"
    assert set(token["scope"].split()) == set(REQUESTED.split())
    assert token["refresh_token"]
    claims = check_id_token(server, metadata, token, client_id, nonce)
    await check_userinfo(rp, metadata, claims["sub"])

    refreshed = await rp.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert claims_of(refreshed["access_token"])["sid"] == claims["sid"], "refresh left the session"
    if "id_token" in refreshed:  # optional on refresh (OIDC Core §12.2); when sent, the same rules
        renewed = check_id_token(server, metadata, refreshed, client_id, nonce)
        assert (renewed["sub"], renewed["auth_time"]) == (claims["sub"], claims["auth_time"])
    rp.token = refreshed
    await check_userinfo(rp, metadata, claims["sub"])
    check_token_answers(recorder)
    assert len(recorder.token_answers) == 2


def test_discovery_is_openid_connect(server: LiveServer, metadata: dict[str, Any]) -> None:
    issuer = server.url
    assert metadata["issuer"] == issuer
    for name, path in {
        "authorization_endpoint": "/authorize",
        "token_endpoint": "/token",
        "userinfo_endpoint": "/userinfo",
        "end_session_endpoint": "/logout",
        "pushed_authorization_request_endpoint": "/par",
        "jwks_uri": "/.well-known/jwks.json",
    }.items():
        assert metadata[name] == issuer + path, name
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["response_modes_supported"] == ["query"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["subject_types_supported"] == ["public"]
    assert "authorization_code" in metadata["grant_types_supported"]
    assert set(OIDC_SCOPES.split()) <= set(metadata["scopes_supported"])
    assert alg_of(server) in metadata["id_token_signing_alg_values_supported"]
    assert {"sub", "iss", "aud"} <= set(metadata["claims_supported"])
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert metadata["require_pushed_authorization_requests"] is False
    other = httpx.get(issuer + "/.well-known/oauth-authorization-server")
    assert other.json() == metadata
    cors = httpx.get(
        issuer + "/.well-known/openid-configuration", headers={"Origin": "https://a.example"}
    ).headers
    assert cors["access-control-allow-origin"] == "*"


async def test_public_client_with_pkce(server: LiveServer, metadata: dict[str, Any]) -> None:
    client_id = f"spa-{generate_token(6)}"
    add_browser_client(server.env, client_id, LOOPBACK, kind="public")
    redirect_uri = "http://127.0.0.1:53117/callback"  # the registered loopback URI on another port
    recorder = Recorder()
    async with authlib_async_client()(
        client_id=client_id,
        token_endpoint_auth_method="none",
        redirect_uri=redirect_uri,
        scope=REQUESTED,
        code_challenge_method="S256",
        event_hooks={"response": [recorder]},
    ) as rp:
        await run_code_flow(server, metadata, rp, client_id, redirect_uri, recorder)


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_confidential_client_with_a_secret(
    server: LiveServer, metadata: dict[str, Any], method: str
) -> None:
    client_id = f"web-{generate_token(6)}"
    secret = add_browser_client(server.env, client_id, WEB)
    recorder = Recorder()
    async with authlib_async_client()(
        client_id=client_id,
        client_secret=secret,
        token_endpoint_auth_method=method,
        redirect_uri=WEB,
        scope=REQUESTED,
        code_challenge_method="S256",
        event_hooks={"response": [recorder]},
    ) as rp:
        await run_code_flow(server, metadata, rp, client_id, WEB, recorder)
    sent = [answer.request for answer in recorder.token_answers]
    if method == "client_secret_basic":
        assert all(r.headers["authorization"].startswith("Basic ") for r in sent)
    else:
        assert all("authorization" not in r.headers and b"client_secret=" in r.content for r in sent)


async def test_confidential_client_with_private_key_jwt(
    server: LiveServer, metadata: dict[str, Any], tmp_path: Path
) -> None:
    from authlib.oauth2.rfc7523 import PrivateKeyJWT

    key = RSAKey.generate_key(2048)
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(jwks_of(public_jwk(key, "rp-key-1")))
    client_id = f"jwt-{generate_token(6)}"
    add_browser_client(server.env, client_id, WEB, kind="jwks", jwks=str(jwks_file))
    recorder = Recorder()
    async with authlib_async_client()(
        client_id=client_id,
        client_secret=key,
        token_endpoint_auth_method="private_key_jwt",
        redirect_uri=WEB,
        scope=REQUESTED,
        code_challenge_method="S256",
        event_hooks={"response": [recorder]},
    ) as rp:
        rp.register_client_auth_method(PrivateKeyJWT(metadata["token_endpoint"]))
        await run_code_flow(server, metadata, rp, client_id, WEB, recorder)
    assert all(b"client_assertion=" in answer.request.content for answer in recorder.token_answers)


async def test_a_second_client_in_the_same_browser_needs_no_password(
    server: LiveServer, metadata: dict[str, Any]
) -> None:
    first, second = f"one-{generate_token(6)}", f"two-{generate_token(6)}"
    add_browser_client(server.env, first, WEB, first_party=True)
    add_browser_client(server.env, second, WEB, first_party=True)
    async with httpx.AsyncClient(timeout=30) as browser:
        for client_id in (first, second):
            _, challenge = pkce_pair()
            url = authorization_url(
                server.url,
                response_type="code",
                client_id=client_id,
                redirect_uri=WEB,
                scope="openid",
                code_challenge=challenge,
                code_challenge_method="S256",
            )
            if client_id == first:
                back = callback_query(await sign_in_location(browser, url, "alice", PASSWORD))
            else:
                answer = await browser.get(url)  # the session cookie alone: no page at all
                assert answer.status_code == 303, answer.text
                back = callback_query(answer.headers["location"])
                assert urlsplit(answer.headers["location"]).path == "/callback"
            assert "code" in back and back["iss"] == server.url, back
