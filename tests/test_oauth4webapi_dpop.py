"""DPoP (RFC 9449) with panva's oauth4webapi (3.8.9) against a live authsvc, and its private_key_jwt.

``tests/interop/dpop_client.mjs`` is the client: a ``DPoP(client, keyPair)``
handle (ES256 and Ed25519 keys: oauth4webapi names the latter's alg
``Ed25519``, RFC 9864), client_credentials with the library's documented nonce
retry (``isDPoPNonceError``), the authorization code flow (the hosted pages
driven here with httpx, ``dpop_jkt`` in the authorization URL) redeemed with
DPoP, ``protectedResourceRequest`` to /users/me and ``userInfoRequest`` with
DPoP, ``refreshTokenGrantRequest`` with DPoP, and the refusals of a refresh
by another key and of the bound token as Bearer. Servers with and without
``AUTHSVC_DPOP_NONCE``. Also: private_key_jwt with an Ed25519 key, which
oauth4webapi signs as ``alg: "Ed25519"`` (issue 16: it used to get 401).

Node's packages are pinned in tests/interop/package-lock.json; locally the
test skips without node or ``npm ci``; with ``CI`` set it fails instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from joserfc.jwk import OKPKey

from tests.authorize_support import form_of
from tests.support import LiveServer, claims_of, free_port, start_server, stop_server
from tests.test_key_standby_interop import INTEROP, node_modules_or_skip
from tests.trust_support import add_confidential_client, cli_ok

EXAMPLE = Path(__file__).resolve().parents[1] / "scripts" / "example_resource_server.py"

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"
REDIRECT = "http://127.0.0.1/cb"  # loopback: any port matches (RFC 8252 §7.3)


@pytest.fixture(scope="module", params=["nonce", "no-nonce"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    node_modules_or_skip()
    nonce = request.param == "nonce"
    live = start_server(
        tmp_path_factory.mktemp(f"o4w-dpop-{request.param}"),
        signing_alg="EdDSA",
        dpop_nonce="true" if nonce else "false",
    )
    try:
        cli_ok(
            live.env,
            "users",
            "add",
            "alice",
            "--password-stdin",
            "--scope",
            "read",
            "--email",
            "alice@example.com",
            "--full-name",
            "Alice Example",
            input=PASSWORD + "\n",
        )
        yield live
    finally:
        stop_server(live)


def _nonce(server: LiveServer) -> bool:
    return server.env.get("AUTHSVC_DPOP_NONCE") == "true"


def _node(scenario: str, server: LiveServer, args: dict[str, Any]) -> dict[str, Any]:
    node = node_modules_or_skip()
    result = subprocess.run(
        [node, str(INTEROP / "dpop_client.mjs"), scenario, server.url, json.dumps(args)],
        cwd=INTEROP,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines, f"dpop_client.mjs wrote nothing: {result.stderr}"
    outcome: dict[str, Any] = json.loads(lines[-1])
    return outcome


@pytest.mark.parametrize("alg", ["ES256", "Ed25519"])
def test_client_credentials_with_a_dpop_handle_and_the_nonce_retry(server: LiveServer, alg: str) -> None:
    client_id = f"o4w-cc-{alg.lower()}"
    secret = add_confidential_client(server.env, client_id, "client_credentials")
    outcome = _node(
        "client_credentials", server, {"client_id": client_id, "client_secret": secret, "alg": alg}
    )
    assert outcome.get("ok") is True, f"oauth4webapi failed: {outcome}"
    # With nonces, the first request is told to use one and retried; the handle keeps it after that.
    assert outcome["retries"] == (["first"] if _nonce(server) else []), outcome["retries"]
    assert outcome["token_types"] == ["dpop", "dpop"]  # oauth4webapi lower-cases token_type
    for access in outcome["access_tokens"]:
        assert claims_of(access).get("cnf") == {"jkt": outcome["jkt"]}


def _sign_in(authorization_url: str) -> str:
    """The hosted pages as a browser sees them (a first-party client: no consent): the callback URL."""
    with httpx.Client(timeout=30) as browser:
        page = browser.get(authorization_url)
        assert page.status_code == 200, page.text
        form = form_of(page)
        action = urljoin(str(page.url), form.action or str(page.url))
        done = browser.post(action, data={**form.hidden, "username": "alice", "password": PASSWORD})
        assert done.status_code == 303, done.text
        return done.headers["location"]


class CodeFlow:
    """One run of dpop_client.mjs code_flow: phase one gives the authorization URL, phase two the results."""

    def __init__(self, server: LiveServer, args: dict[str, Any]) -> None:
        node = node_modules_or_skip()
        self.process = subprocess.Popen(
            [node, str(INTEROP / "dpop_client.mjs"), "code_flow", server.url, json.dumps(args)],
            cwd=INTEROP,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.kill()
            pytest.fail(f"dpop_client.mjs wrote nothing: {self.process.communicate()[1]}")
        self.started: dict[str, Any] = json.loads(line)
        assert "authorization_url" in self.started, f"phase one failed: {self.started}"

    def finish(self, callback_url: str) -> dict[str, Any]:
        out, err = self.process.communicate(callback_url + "\n", timeout=120)
        assert self.process.returncode == 0, err
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result


@pytest.mark.parametrize("alg", ["ES256", "Ed25519"])
def test_code_flow_resource_requests_and_refresh_with_dpop(server: LiveServer, alg: str) -> None:
    client_id = f"o4w-spa-{alg.lower()}"
    cli_ok(
        server.env,
        "clients",
        "add",
        client_id,
        "--public",
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--redirect-uri",
        REDIRECT,
        "--first-party",
        "--scope",
        "openid profile email",
    )
    flow = CodeFlow(
        server,
        {
            "client_id": client_id,
            "redirect_uri": "http://127.0.0.1:40123/cb",
            "alg": alg,
            "signing_alg": "EdDSA",
            "dpop_jkt": True,
        },
    )
    result = flow.finish(_sign_in(flow.started["authorization_url"]))
    assert result.get("ok") is True, f"oauth4webapi failed: {result}"
    jkt = flow.started["jkt"]
    assert result["token_type"] == "dpop"  # oauth4webapi lower-cases token_type
    for token in (result["access_token"], result["refresh_token"], result["refreshed_access_token"]):
        assert claims_of(token).get("cnf") == {"jkt": jkt}
    assert result["refreshed_token_type"] == "dpop"
    assert claims_of(result["refreshed_refresh_token"]).get("cnf") == {"jkt": jkt}
    assert result["users_me"] == {"status": 200, "body": _alice()}
    assert result["users_me_after_refresh"] == {"status": 200, "body": _alice()}
    assert result["userinfo"]["preferred_username"] == "alice"
    # Nonces: the handle's first token request needs a retry, its nonce then serves the resource
    # and the refresh; the thief's new handle needs one retry of its own.
    expected = ["authorization_code", "stolen_refresh"] if _nonce(server) else []
    assert result["retries"] == expected, result["retries"]
    assert result["stolen_refresh"].get("error") == "invalid_grant", result["stolen_refresh"]
    bearer = result["as_bearer"]
    assert bearer.get("status") == 401 and bearer.get("code") == "OAUTH_WWW_AUTHENTICATE_CHALLENGE", bearer


def _alice() -> dict[str, Any]:
    return {
        "username": "alice",
        "email": "alice@example.com",
        "full_name": "Alice Example",
        "disabled": False,
    }


def _jwks_file(tmp_path: Path, name: str, jwk: dict[str, Any]) -> Path:
    path = tmp_path / f"{name}.jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return path


@pytest.mark.parametrize(
    ("registered_alg", "dpop_alg"), [(None, None), ("EdDSA", None), ("Ed25519", None), (None, "Ed25519")]
)
def test_private_key_jwt_with_an_ed25519_key(
    server: LiveServer, tmp_path: Path, registered_alg: str | None, dpop_alg: str | None
) -> None:
    """oauth4webapi signs client assertions with an Ed25519 key as alg "Ed25519" (RFC 9864).

    The client's key is registered without ``alg``, as ``EdDSA`` (the only name before RFC
    9864) and as ``Ed25519``; all three are the same algorithm over the same key.
    """
    key = OKPKey.generate_key("Ed25519")
    public = {**key.as_dict(private=False), "kid": "k1", "use": "sig"}
    if registered_alg is not None:
        public["alg"] = registered_alg
    client_id = f"o4w-jwt-{registered_alg or 'noalg'}-{dpop_alg or 'bearer'}".lower()
    cli_ok(
        server.env,
        "clients",
        "add",
        client_id,
        "--grant",
        "client_credentials",
        "--jwks",
        str(_jwks_file(tmp_path, client_id, public)),
    )
    outcome = _node(
        "private_key_jwt",
        server,
        {"client_id": client_id, "jwk": key.as_dict(private=True), "kid": "k1", "dpop_alg": dpop_alg},
    )
    assert outcome.get("assertion_alg") == "Ed25519", outcome
    assert outcome.get("ok") is True, f"the Ed25519 client assertion was refused: {outcome}"
    if dpop_alg is None:
        assert outcome["token_type"] == "bearer"
    else:
        assert outcome["token_type"] == "dpop"
        assert claims_of(outcome["access_token"]).get("cnf") == {"jkt": outcome["jkt"]}
        assert outcome["retries"] == (["client_credentials"] if _nonce(server) else [])


def test_a_fastapi_resource_server_with_authsvc_verifier_takes_oauth4webapis_dpop(
    server: LiveServer, tmp_path: Path
) -> None:
    """The resource side for real: oauth4webapi's DPoP handle against scripts/example_resource_server.py
    (FastAPI + authsvc.verifier), which places orders for DPoP-bound tokens only."""
    secret = add_confidential_client(server.env, "o4w-rs", "client_credentials")
    cli_ok(server.env, "clients", "update", "o4w-rs", "--scope", "orders:read orders:write")
    port = free_port()
    resource = f"http://127.0.0.1:{port}"
    code = (
        "import importlib.util, sys, uvicorn\n"
        f"spec = importlib.util.spec_from_file_location('rs', {str(EXAMPLE)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        f"app = module.create_app({server.url!r}, 'authsvc', {resource!r})\n"
        f"uvicorn.run(app, host='127.0.0.1', port={port}, log_level='warning')\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], env=server.env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(resource + "/orders", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and process.poll() is None, (
                    "the resource server did not start"
                )
                time.sleep(0.1)
        outcome = _node(
            "resource_server",
            server,
            {
                "client_id": "o4w-rs",
                "client_secret": secret,
                "alg": "ES256",
                "resource_url": resource + "/orders",
            },
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert outcome.get("ok") is True, outcome
    assert outcome["token_type"] == "dpop"
    assert outcome["placed"]["status"] == 200, outcome["placed"]
    assert outcome["listed"]["status"] == 200, outcome["listed"]
    bearer = outcome["as_bearer"]
    assert bearer.get("status") == 401, bearer
