"""Browser sign-in with panva's oauth4webapi (3.8.9) in its OpenID Connect profile, against a live server.

``tests/interop/oidc_client.mjs`` is the relying party: discovery with
``algorithm: 'oidc'``, a PKCE authorization URL, then, once this test has
driven the hosted pages with httpx (``tests/browser_flow``) and handed it the
callback URL, ``validateAuthResponse`` (``iss`` required: the metadata says
``authorization_response_iss_parameter_supported``), the code grant with the
ID token's claims and nonce checked by the library and its signature by jose,
userinfo, and a refresh. A denied consent reaches the library as an
``access_denied`` authorization error carrying ``iss``. RS256 and EdDSA servers.

Node's packages are pinned in tests/interop/package-lock.json; locally the
test skips without node or ``npm ci``; with ``CI`` set it fails instead.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser_flow import sign_in_location
from tests.oidc_support import PASSWORD, add_browser_client, add_user, at_hash
from tests.support import LiveServer, claims_of, start_server, stop_server
from tests.test_key_standby_interop import INTEROP, node_modules_or_skip

pytestmark = pytest.mark.slow

LOOPBACK = "http://127.0.0.1/cb"
WEB = "https://rp.example/cb"


@pytest.fixture(scope="module", params=["RS256", "EdDSA"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    node_modules_or_skip()
    live = start_server(tmp_path_factory.mktemp(f"o4w-{request.param}"), signing_alg=request.param)
    try:
        add_user(live.env, "alice")
        yield live
    finally:
        stop_server(live)


class RelyingParty:
    """One run of oidc_client.mjs: phase one gives the authorization URL, phase two the results."""

    def __init__(self, issuer: str, client_id: str, redirect_uri: str, secret: str | None = None) -> None:
        node = node_modules_or_skip()
        args = [node, str(INTEROP / "oidc_client.mjs"), issuer, client_id, redirect_uri]
        self.process = subprocess.Popen(
            [*args, *([secret] if secret else [])],
            cwd=INTEROP,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"oidc_client.mjs wrote nothing: {self._stderr()}"
        self.started: dict[str, Any] = json.loads(line)
        assert "authorization_url" in self.started, f"phase one failed: {self.started}"

    def _stderr(self) -> str:
        self.process.kill()
        return self.process.communicate()[1]

    def finish(self, callback_url: str) -> dict[str, Any]:
        out, err = self.process.communicate(callback_url + "\n", timeout=60)
        assert self.process.returncode == 0, err
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result


def _browser_sign_in(rp: RelyingParty, consent: str = "allow") -> str:
    with httpx.Client(timeout=30) as browser:
        return sign_in_location(browser, rp.started["authorization_url"], "alice", PASSWORD, consent)


@pytest.mark.parametrize("kind", ["public", "client_secret_basic"])
def test_oauth4webapi_code_flow_id_token_userinfo_refresh(server: LiveServer, kind: str) -> None:
    alg = server.env["AUTHSVC_SIGNING_ALG"]
    client_id = f"o4w-{kind.replace('_', '-')}"
    if kind == "public":
        add_browser_client(server.env, client_id, LOOPBACK, kind="public")
        redirect_uri, secret = "http://127.0.0.1:40111/cb", None
    else:
        redirect_uri, secret = WEB, add_browser_client(server.env, client_id, WEB)
    rp = RelyingParty(server.url, client_id, redirect_uri, secret)
    callback = _browser_sign_in(rp)
    assert callback.startswith(redirect_uri + "?"), callback
    result = rp.finish(callback)
    assert result.get("ok") is True, f"oauth4webapi refused the server: {result}"

    assert result["issuer"] == server.url
    assert result["callback_params"]["iss"] == server.url
    claims = result["id_token_claims"]
    assert claims["nonce"] == rp.started["nonce"]
    assert claims["aud"] == client_id
    assert claims["at_hash"] == at_hash(result["access_token"], alg)
    assert claims["sid"] == claims_of(result["access_token"])["sid"]
    assert result["id_token_header"]["alg"] == alg
    assert set(result["scope"].split()) == {"openid", "profile", "email", "offline_access"}
    expected_userinfo = {
        "sub": claims["sub"],
        "preferred_username": "alice",
        "name": "Alice Example",
        "email": "alice@example.com",
        "email_verified": False,
    }
    assert result["userinfo"] == expected_userinfo
    assert result["userinfo_cache_control"] == "no-store"
    assert result["refreshed"]["rotated"] is True
    assert result["userinfo_after_refresh"] == expected_userinfo


def test_oauth4webapi_sees_a_denied_consent_with_iss(server: LiveServer) -> None:
    add_browser_client(server.env, "o4w-deny", LOOPBACK, kind="public")
    rp = RelyingParty(server.url, "o4w-deny", "http://127.0.0.1:40112/cb")
    callback = _browser_sign_in(rp, consent="deny")
    result = rp.finish(callback)
    # iss is checked before the error: without it the library reports OAUTH_INVALID_RESPONSE
    assert (result.get("failed"), result.get("code")) == (
        "validateAuthResponse",
        "OAUTH_AUTHORIZATION_RESPONSE_ERROR",
    ), result
    assert result["error"] == "access_denied", result
    assert result["detail"]["iss"] == server.url
    assert result["detail"]["state"]
