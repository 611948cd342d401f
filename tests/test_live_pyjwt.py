"""End to end: a real ``authsvc serve`` on 127.0.0.1, checked with PyJWT's JWKS client.

One server per signing algorithm for the whole module (start-up is the slow part).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import jwt
import pytest

from authsvc.migrations import current_revision, head_revision
from authsvc.store.sql.engine import create_engine
from tests.support import LiveServer, start_server, stop_server

PASSWORD = "correct horse"


@pytest.fixture(scope="module", params=["RS256", "EdDSA"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    alg = request.param
    live = start_server(tmp_path_factory.mktemp(f"live-{alg}"), signing_alg=alg)
    try:
        added = live.cli(
            "users",
            "add",
            "alice",
            "--password-stdin",
            "--scope",
            "read write",
            "--email",
            "alice@example.com",
            input=PASSWORD + "\n",
        )
        assert added.returncode == 0, added.stderr
        yield live
    finally:
        stop_server(live)


def alg_of(server: LiveServer) -> str:
    return server.env["AUTHSVC_SIGNING_ALG"]


def login(server: LiveServer, **extra: str) -> httpx.Response:
    return httpx.post(
        server.url + "/token",
        data={"grant_type": "password", "username": "alice", "password": PASSWORD, **extra},
        timeout=10,
    )


def verify_with_pyjwt(server: LiveServer, token: str) -> dict[str, object]:
    client = jwt.PyJWKClient(server.url + "/.well-known/jwks.json")
    signing_key = client.get_signing_key_from_jwt(token)
    return jwt.decode(  # type: ignore[no-any-return]
        token, signing_key, algorithms=[alg_of(server)], audience="authsvc", issuer=server.url
    )


def test_login_token_verifies_with_pyjwt(server: LiveServer) -> None:
    response = login(server)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == alg_of(server)
    assert header["typ"] == "at+jwt"
    claims = verify_with_pyjwt(server, body["access_token"])
    assert claims["iss"] == server.url
    assert claims["client_id"] == "cli"
    assert claims["scope"] == "read write"
    assert isinstance(claims["sub"], str)
    assert claims["sub"] != "alice"
    assert abs(float(claims["iat"]) - time.time()) < 60  # type: ignore[arg-type]


def test_refresh_over_http(server: LiveServer) -> None:
    first = login(server).json()
    response = httpx.post(
        server.url + "/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "scope": "read"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    second = response.json()
    claims = verify_with_pyjwt(server, second["access_token"])
    assert claims["scope"] == "read"
    assert claims["sid"] == verify_with_pyjwt(server, first["access_token"])["sid"]

    replay = httpx.post(
        server.url + "/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        timeout=10,
    )
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"


def test_users_me_over_http(server: LiveServer) -> None:
    token = login(server).json()["access_token"]
    response = httpx.get(server.url + "/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200
    assert response.json() == {
        "username": "alice",
        "email": "alice@example.com",
        "full_name": None,
        "disabled": False,
    }
    bare = httpx.get(server.url + "/users/me", timeout=10)
    assert bare.status_code == 401
    assert bare.headers["www-authenticate"] == 'Bearer realm="authsvc"'


def test_startup_output_mentions_the_issuer(server: LiveServer) -> None:
    log = server.log_path.read_text()
    assert server.url in log
    assert "users add" in log  # how to add a user
    metadata = httpx.get(server.url + "/.well-known/oauth-authorization-server", timeout=10).json()
    assert metadata["issuer"] == server.url
    assert metadata["jwks_uri"] == server.url + "/.well-known/jwks.json"


def test_jwks_over_http(server: LiveServer) -> None:
    response = httpx.get(server.url + "/.well-known/jwks.json", timeout=10)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    etag = response.headers["etag"]
    again = httpx.get(server.url + "/.well-known/jwks.json", headers={"If-None-Match": etag}, timeout=10)
    assert again.status_code == 304
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == "public, max-age=300"
    assert again.content == b""


async def test_database_is_at_head_after_serve(server: LiveServer) -> None:
    engine = create_engine(server.env["AUTHSVC_DATABASE_URL"])
    try:
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


def test_key_files_after_serve(server: LiveServer) -> None:
    keys_dir = Path(server.env["AUTHSVC_KEYS_DIR"])
    assert keys_dir.stat().st_mode & 0o777 == 0o700
    for path in keys_dir.iterdir():
        assert path.stat().st_mode & 0o077 == 0, path.name


# --- the wire -------------------------------------------------------------------------------------
def _raw(server: LiveServer, request: bytes, timeout: float = 5) -> bytes:
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # the server may close before reading everything
            sock.sendall(request)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
    return b"".join(chunks)


def test_declared_100_mb_body_is_refused_before_it_is_read(server: LiveServer) -> None:
    started = time.monotonic()
    reply = _raw(
        server,
        b"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 104857600\r\n\r\n"
        b"grant_type=password",
    )
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b'"error"' in reply
    assert time.monotonic() - started < 4  # answered at once, not after waiting for 100 MB


def test_oversized_headers_are_431_or_a_closed_connection(server: LiveServer) -> None:
    reply = _raw(
        server,
        b"GET /users/me HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
    )
    assert reply == b"" or reply.startswith((b"HTTP/1.1 431", b"HTTP/1.1 400")), reply[:200]
    assert b"Traceback" not in reply
