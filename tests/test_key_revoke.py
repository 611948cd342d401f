"""``authsvc keys revoke KID`` against a running server: the emergency brake.

The revoked key leaves the JWKS and signing at once (the server notices the
store change within a second); tokens it signed are refused — 401 at
/users/me, invalid_grant at /token for its refresh tokens; the pending
successor, or else a brand-new key, signs the very next token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from tests.support import LiveServer

JWKS = "/.well-known/jwks.json"


def login(server: LiveServer) -> dict[str, Any]:
    response = httpx.post(
        server.url + "/token",
        data={"grant_type": "password", "username": "alice", "password": "pw-alice-1"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def jwks_kids(server: LiveServer) -> list[str]:
    return [k["kid"] for k in httpx.get(server.url + JWKS, timeout=10).json()["keys"]]


def me(server: LiveServer, token: str) -> httpx.Response:
    return httpx.get(server.url + "/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def refresh(server: LiveServer, token: str) -> httpx.Response:
    return httpx.post(
        server.url + "/token", data={"grant_type": "refresh_token", "refresh_token": token}, timeout=10
    )


def verifies(server: LiveServer, token: str) -> bool:
    """A resource server's check with a freshly fetched JWKS."""
    keys = {k["kid"]: k for k in httpx.get(server.url + JWKS, timeout=10).json()["keys"]}
    jwk = keys.get(kid(token))
    if jwk is None:
        return False
    claims = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=[jwk["alg"]], audience="authsvc")
    return bool(claims)


def revoke(server: LiveServer, victim: str) -> list[str]:
    """Revoke through the CLI and wait until the server no longer publishes the kid."""
    result = server.cli("keys", "revoke", victim)
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 3
    while victim in jwks_kids(server):
        assert time.monotonic() < deadline, "the server still publishes a revoked key"
        time.sleep(0.1)
    return result.stdout.splitlines()


def test_revoking_keys_of_a_running_server(live_server_factory: Callable[..., LiveServer]) -> None:
    """Without a standby (AUTHSVC_KEY_STANDBY=false) exactly as before; tests/test_key_standby.py: with."""
    server = live_server_factory(signing_alg="EdDSA", key_standby="false")
    added = server.cli("users", "add", "alice", "--password-stdin", input="pw-alice-1\n")
    assert added.returncode == 0, added.stderr
    old = login(server)
    first = kid(old["access_token"])
    assert jwks_kids(server) == [first]

    # A pending successor exists: revoking the signing key makes it sign at once.
    forced = server.cli("keys", "rotate", "--force")
    assert forced.returncode == 0, forced.stderr
    successor = forced.stdout.split()[1]
    deadline = time.monotonic() + 3
    while successor not in jwks_kids(server):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert kid(login(server)["access_token"]) == first  # still pending
    lines = revoke(server, first)
    assert lines[0].startswith(f"revoked {first}")
    assert lines[1].startswith(f"signing {successor}")
    assert jwks_kids(server) == [successor]

    response = me(server, old["access_token"])
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    response = refresh(server, old["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"

    new = login(server)
    assert kid(new["access_token"]) == kid(new["refresh_token"]) == successor
    assert me(server, new["access_token"]).status_code == 200
    assert verifies(server, new["access_token"])

    # No pending successor: a brand-new key signs at once.
    lines = revoke(server, successor)
    assert lines[0].startswith(f"revoked {successor}")
    assert lines[1].startswith("created ")
    replacement = lines[1].split()[1]
    assert jwks_kids(server) == [replacement]
    assert me(server, new["access_token"]).status_code == 401
    assert refresh(server, new["refresh_token"]).json()["error"] == "invalid_grant"
    newest = login(server)
    assert kid(newest["access_token"]) == replacement
    assert me(server, newest["access_token"]).status_code == 200
    assert verifies(server, newest["access_token"])
    rotated = refresh(server, newest["refresh_token"])
    assert rotated.status_code == 200
    assert kid(rotated.json()["access_token"]) == replacement

    listing = server.cli("keys", "list").stdout
    states = {line.split()[0]: line.split()[2] for line in listing.splitlines()[1:4]}
    assert states == {first: "revoked", successor: "revoked", replacement: "signing"}
