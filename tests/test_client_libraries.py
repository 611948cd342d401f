"""Real OAuth client libraries against a live server: Authlib's httpx client.

Authlib fetches client_credentials tokens with client_secret_basic,
client_secret_post and private_key_jwt (its RFC 7523 ``PrivateKeyJWT``), and
introspects and revokes with the same authentication; the tokens verify with
PyJWT against the published JWKS. An assertion Authlib sent, replayed by
hand, is refused, also by a second server instance on the same database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from joserfc.jwk import RSAKey

from tests.support import LiveServer, authlib_async_client, start_server, stop_server
from tests.test_client_auth import ASSERTION_TYPE
from tests.test_private_key_jwt import jwks_of, public_jwk

pytestmark = pytest.mark.slow

SECRET_LINE = re.compile(r"client secret \(shown once, store it now\): (\S+)")


@pytest.fixture(scope="module")
def server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("client-libraries")


@pytest.fixture(scope="module")
def server(server_dir: Path) -> Iterator[LiveServer]:
    live = start_server(server_dir)
    try:
        yield live
    finally:
        stop_server(live)


@pytest.fixture(scope="module")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048)


class _Auth:
    """What Authlib's auth methods read from a client: its id and key."""

    def __init__(self, client_id: str, client_secret: Any) -> None:
        self.client_id = client_id
        self.client_secret = client_secret


def verify(server: LiveServer, token: str, audience: str) -> dict[str, Any]:
    """Check an access token the way a resource server using PyJWT would."""
    key = jwt.PyJWKClient(server.url + "/.well-known/jwks.json").get_signing_key_from_jwt(token)
    return jwt.decode(
        token, key, algorithms=["RS256", "EdDSA", "ES256", "PS256"], audience=audience, issuer=server.url
    )  # type: ignore[no-any-return]


async def test_authlib_client_secret_basic_and_post(server: LiveServer) -> None:
    added = server.cli("clients", "add", "svc", "--scope", "read write", "--audience", "orders")
    assert added.returncode == 0, added.stderr
    secret = SECRET_LINE.findall(added.stdout)[0]
    token_endpoint = server.url + "/token"

    for method in ("client_secret_basic", "client_secret_post"):
        async with authlib_async_client()(
            client_id="svc",
            client_secret=secret,
            token_endpoint_auth_method=method,
            revocation_endpoint_auth_method=method,
        ) as client:
            token = await client.fetch_token(token_endpoint, grant_type="client_credentials", scope="read")
            assert "refresh_token" not in token
            assert (token["token_type"], token["scope"]) == ("Bearer", "read")
            claims = verify(server, token["access_token"], "orders")
            assert claims["sub"] == claims["client_id"] == "svc"
            assert "sid" not in claims

            introspected = await client.introspect_token(
                server.url + "/introspect", token=token["access_token"]
            )
            assert introspected.status_code == 200
            assert introspected.json()["active"] is True
            revoked = await client.revoke_token(server.url + "/revoke", token=token["access_token"])
            assert revoked.status_code == 200
            introspected = await client.introspect_token(
                server.url + "/introspect", token=token["access_token"]
            )
            assert introspected.json()["active"] is False

    async with authlib_async_client()(client_id="svc", client_secret=secret + "x") as client:
        from authlib.integrations.base_client import OAuthError

        with pytest.raises(OAuthError) as refused:
            await client.fetch_token(token_endpoint, grant_type="client_credentials")
        assert refused.value.error == "invalid_client"
    assert secret not in added.stderr
    assert secret not in server.log_path.read_text()  # the server's own log, audit lines included


async def test_authlib_private_key_jwt_and_replay(
    server: LiveServer, server_dir: Path, rsa_key: RSAKey, tmp_path: Path
) -> None:
    from authlib.oauth2.rfc7523 import PrivateKeyJWT

    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(jwks_of(public_jwk(rsa_key, "client-key-1")))
    added = server.cli("clients", "add", "jwt-svc", "--jwks", str(jwks_file), "--scope", "read")
    assert added.returncode == 0, added.stderr
    token_endpoint = server.url + "/token"

    sent: list[bytes] = []

    async def record(request: httpx.Request) -> None:
        if request.url.path == "/token":
            sent.append(request.content)

    async with authlib_async_client()(
        client_id="jwt-svc",
        client_secret=rsa_key,
        token_endpoint_auth_method="private_key_jwt",
        revocation_endpoint_auth_method="private_key_jwt",
        event_hooks={"request": [record]},
    ) as client:
        client.register_client_auth_method(PrivateKeyJWT(token_endpoint))
        for _ in range(2):  # a fresh assertion (jti) each time
            token = await client.fetch_token(token_endpoint, grant_type="client_credentials")
            assert "refresh_token" not in token
            claims = verify(server, token["access_token"], "authsvc")
            assert claims["sub"] == "jwt-svc"
            assert claims["scope"] == "read"
        introspected = await client.introspect_token(server.url + "/introspect", token=token["access_token"])
        assert introspected.json()["active"] is True

    assert len(sent) == 2
    assert b"client_assertion=" in sent[0]
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    # A second instance: same database and key files, same issuer (the assertions' aud).
    second = start_server(server_dir, issuer=server.url)
    try:
        async with httpx.AsyncClient() as plain:
            for url in (token_endpoint, second.url + "/token"):
                for sent_body in sent:
                    replay = await plain.post(url, content=sent_body, headers=form_type)
                    assert replay.status_code == 401, (url, replay.text)
                    assert replay.json()["error"] == "invalid_client"
                    assert replay.headers["www-authenticate"] == 'Basic realm="authsvc"'
            # The second instance takes a fresh assertion, and the first then refuses it.
            fresh = PrivateKeyJWT(token_endpoint).sign(_Auth("jwt-svc", rsa_key), token_endpoint)
            fresh_form = {
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": fresh,
            }
            assert (await plain.post(second.url + "/token", data=fresh_form)).status_code == 200
            replay = await plain.post(token_endpoint, data=fresh_form)
            assert (replay.status_code, replay.json()["error"]) == (401, "invalid_client")
    finally:
        stop_server(second)
