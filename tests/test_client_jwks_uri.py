"""private_key_jwt with keys the client publishes at a URI (``clients add|update --jwks-uri``).

The client's key endpoint is a threaded ``http.server`` on 127.0.0.1 in the
test; the client is registered through the CLI's entry point and
authenticates over HTTP to the ASGI app, whose FrozenClock drives the cache
(the verifier's KeyCache): ``Cache-Control: max-age`` is honoured, a new kid
is picked up once the unknown-kid cooldown has passed (and not before), a
failing URI is ``invalid_client`` (never a 5xx) with a back-off instead of a
fetch per request, cached keys outlive an outage for ``STALE_IF_ERROR``, and
fetched keys pass the registration rules (a weak, foreign-curve, private or
symmetric key authenticates nothing).
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from authsvc.client_jwks import MIN_CACHE, STALE_IF_ERROR, UNKNOWN_KID_COOLDOWN
from tests.support import AppHarness
from tests.test_cli_clients import LocalCli
from tests.test_client_auth import assert_invalid_client
from tests.test_private_key_jwt import assertion_claims, forged, jwks_of, public_jwk, sign, with_assertion
from tests.trust_support import cli_env, cli_ok

CLIENT = "jwt-svc"  # the client id assertion_claims uses


class KeyEndpoint:
    """A client's JWKS endpoint: serves what the test publishes at each path, counts requests."""

    def __init__(self) -> None:
        self.documents: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.hits: dict[str, int] = {}
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.hits[self.path] = endpoint.hits.get(self.path, 0) + 1
                status, body, headers = endpoint.documents.get(self.path, (404, b"", {}))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def publish(
        self, path: str, *jwks: dict[str, Any], cache_control: str = "max-age=60", status: int = 200
    ) -> str:
        body = jwks_of(*jwks).encode()
        self.documents[path] = (status, body, {"Cache-Control": cache_control})
        return self.base + path

    def serve_raw(self, path: str, status: int, body: bytes, **headers: str) -> str:
        self.documents[path] = (status, body, headers)
        return self.base + path

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


@pytest.fixture
def endpoint() -> Iterator[KeyEndpoint]:
    served = KeyEndpoint()
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> LocalCli:
    return LocalCli(cli_env(tmp_path), monkeypatch, capsys)


async def register(local: LocalCli, client_id: str, uri: str, *verb: str) -> None:
    result = await local("clients", *(verb or ("add",)), client_id, "--jwks-uri", uri)
    assert result.returncode == 0, result.stderr


async def authenticate(
    h: AppHarness, key: Any, alg: str, kid: str | None, client_id: str = CLIENT
) -> httpx.Response:
    return await with_assertion(h, sign(key, alg, assertion_claims(h.clock.now(), client_id), kid=kid))


def ok(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text


# --- the cache's policy ----------------------------------------------------------------------
async def test_keys_at_the_uri_authenticate_and_are_cached_for_max_age(
    harness_factory: Callable[..., Any], database_url: str, endpoint: KeyEndpoint, tmp_path: Path
) -> None:
    h = await harness_factory(database_url=database_url)
    key = ECKey.generate_key("P-256")
    uri = endpoint.publish("/jwks.json", public_jwk(key, "k1", "ES256"), cache_control="max-age=60")
    out = cli_ok(cli_env(tmp_path, database_url=database_url), "clients", "add", CLIENT, "--jwks-uri", uri)
    assert "client secret" not in out

    ok(await authenticate(h, key, "ES256", "k1"))
    ok(await authenticate(h, key, "ES256", None))  # no kid: the set's only key
    ok(await authenticate(h, key, "ES256", "k1"))
    assert endpoint.hits["/jwks.json"] == 1
    assert_invalid_client(await authenticate(h, ECKey.generate_key("P-256"), "ES256", "k1"))  # another key

    h.clock.advance(59)
    ok(await authenticate(h, key, "ES256", "k1"))
    assert endpoint.hits["/jwks.json"] == 1
    h.clock.advance(2)  # past max-age: fetched again
    ok(await authenticate(h, key, "ES256", "k1"))
    assert endpoint.hits["/jwks.json"] == 2


async def test_a_new_kid_is_picked_up_after_the_cooldown(
    harness: AppHarness, local: LocalCli, endpoint: KeyEndpoint
) -> None:
    h = harness
    old, new = ECKey.generate_key("P-256"), RSAKey.generate_key(2048)
    uri = endpoint.publish("/jwks.json", public_jwk(old, "k1"), cache_control="max-age=3600")
    await register(local, CLIENT, uri)
    ok(await authenticate(h, old, "ES256", "k1"))
    assert endpoint.hits["/jwks.json"] == 1

    # The client rotates: k1 withdrawn, k2 (RSA, alg from its type) published.
    endpoint.publish("/jwks.json", public_jwk(new, "k2"), cache_control="max-age=3600")
    h.clock.advance(UNKNOWN_KID_COOLDOWN - 1)
    assert_invalid_client(await authenticate(h, new, "RS256", "k2"))  # inside the cooldown: no fetch
    assert endpoint.hits["/jwks.json"] == 1
    h.clock.advance(1)
    ok(await authenticate(h, new, "RS256", "k2"))
    assert endpoint.hits["/jwks.json"] == 2
    assert_invalid_client(await authenticate(h, old, "ES256", "k1"))  # withdrawn
    # Unknown kids do not turn into a fetch per request.
    for kid in ("k3", "k4", "k5"):
        assert_invalid_client(await authenticate(h, new, "RS256", kid))
    assert endpoint.hits["/jwks.json"] == 2


async def test_a_failing_uri_is_invalid_client_and_backs_off(
    harness: AppHarness, local: LocalCli, endpoint: KeyEndpoint
) -> None:
    h = harness
    key = ECKey.generate_key("P-256")
    # Nothing listening there: connection refused.
    closed = KeyEndpoint()
    closed.stop()
    await register(local, "gone", closed.base + "/jwks.json")
    response = await authenticate(h, key, "ES256", "k1", "gone")
    assert_invalid_client(response)

    for n, (status, body, headers) in enumerate(
        (
            (500, b"oops", {}),
            (200, b"{not json", {}),
            (200, b'{"keys": "none"}', {}),
            (302, b"", {"Location": endpoint.base + "/good"}),  # redirects are not followed
            (200, b" " * (1024 * 1024 + 1), {}),  # over the size cap
        )
    ):
        client_id = f"broken-{n}"
        await register(local, client_id, endpoint.serve_raw(f"/broken-{n}", status, body, **headers))
        assert_invalid_client(await authenticate(h, key, "ES256", "k1", client_id))
    endpoint.publish("/good", public_jwk(key, "k1"))

    # A failure backs off: no fetch per request, then the repaired endpoint is read again.
    uri = endpoint.serve_raw("/flaky", 503, b"")
    await register(local, "flaky", uri)
    assert_invalid_client(await authenticate(h, key, "ES256", "k1", "flaky"))
    assert_invalid_client(await authenticate(h, key, "ES256", "k1", "flaky"))
    assert endpoint.hits["/flaky"] == 1
    endpoint.publish("/flaky", public_jwk(key, "k1"), cache_control="max-age=60")
    h.clock.advance(MIN_CACHE)
    ok(await authenticate(h, key, "ES256", "k1", "flaky"))
    assert endpoint.hits["/flaky"] == 2

    # Once fetched, the keys outlive an outage for STALE_IF_ERROR past their lifetime.
    endpoint.serve_raw("/flaky", 500, b"")
    h.clock.advance(60)
    ok(await authenticate(h, key, "ES256", "k1", "flaky"))
    assert endpoint.hits["/flaky"] == 3
    h.clock.advance(STALE_IF_ERROR)
    assert_invalid_client(await authenticate(h, key, "ES256", "k1", "flaky"))


# --- the keys' rules -------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _rs256_by_hand(private: rsa.RSAPrivateKey, kid: str, claims: dict[str, Any]) -> str:
    """An RS256 JWS with a key the JOSE libraries rightly refuse to use (1024 bits)."""
    signing_input = (
        _b64(json.dumps({"alg": "RS256", "kid": kid}).encode()) + "." + _b64(json.dumps(claims).encode())
    )
    signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + _b64(signature)


def _es384(key: ECKey, kid: str, claims: dict[str, Any]) -> str:
    return jws.serialize_compact({"alg": "ES384", "kid": kid}, json.dumps(claims), key, algorithms=["ES384"])


async def test_keys_at_the_uri_pass_the_registration_rules(
    harness: AppHarness, local: LocalCli, endpoint: KeyEndpoint
) -> None:
    h = harness
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    numbers = weak.public_key().public_numbers()
    weak_jwk = {
        "kty": "RSA",
        "kid": "weak",
        "n": _b64(numbers.n.to_bytes(128, "big")),
        "e": _b64(numbers.e.to_bytes(3, "big")),
    }
    await register(local, "weak", endpoint.publish("/weak", weak_jwk))
    claims = assertion_claims(h.clock.now(), "weak")
    assert_invalid_client(await with_assertion(h, _rs256_by_hand(weak, "weak", claims)))

    p384 = ECKey.generate_key("P-384")
    await register(local, "p384", endpoint.publish("/p384", public_jwk(p384, "k1")))
    assert_invalid_client(
        await with_assertion(h, _es384(p384, "k1", assertion_claims(h.clock.now(), "p384")))
    )

    leaked = ECKey.generate_key("P-256")  # the private half published: refused, not trimmed
    await register(
        local, "leaked", endpoint.publish("/leaked", {**leaked.as_dict(private=True), "kid": "k1"})
    )
    assert_invalid_client(await authenticate(h, leaked, "ES256", "k1", "leaked"))

    secret = b"s" * 32
    await register(
        local, "oct", endpoint.publish("/oct", {"kty": "oct", "k": _b64(secret), "kid": "k1", "alg": "HS256"})
    )
    assert_invalid_client(
        await with_assertion(h, forged("HS256", assertion_claims(h.clock.now(), "oct"), secret))
    )

    # A usable key next to an unusable one still works (the set is read key by key).
    good = ECKey.generate_key("P-256")
    await register(
        local, "mixed", endpoint.publish("/mixed", public_jwk(p384, "bad"), public_jwk(good, "good"))
    )
    ok(await authenticate(h, good, "ES256", "good", "mixed"))
    assert_invalid_client(
        await with_assertion(h, _es384(p384, "bad", assertion_claims(h.clock.now(), "mixed")))
    )


async def test_update_moves_a_client_between_registered_keys_and_a_uri(
    harness: AppHarness, local: LocalCli, endpoint: KeyEndpoint, tmp_path: Path
) -> None:
    h = harness
    registered, published = ECKey.generate_key("P-256"), ECKey.generate_key("P-256")
    jwks_file = tmp_path / "public.json"
    jwks_file.write_text(jwks_of(public_jwk(registered, "k1")))
    assert (await local("clients", "add", CLIENT, "--jwks", str(jwks_file))).returncode == 0
    ok(await authenticate(h, registered, "ES256", "k1"))

    await register(local, CLIENT, endpoint.publish("/jwks.json", public_jwk(published, "k1")), "update")
    h.services.clients.forget()  # this process's cache; others see it within CACHE_TTL
    ok(await authenticate(h, published, "ES256", "k1"))
    assert_invalid_client(await authenticate(h, registered, "ES256", "k1"))
    with sqlite3.connect(tmp_path / "authsvc.db") as conn:
        row = conn.execute("SELECT jwks, jwks_uri FROM clients WHERE client_id = ?", (CLIENT,)).fetchone()
    assert row == (None, endpoint.base + "/jwks.json")

    assert (await local("clients", "update", CLIENT, "--jwks", str(jwks_file))).returncode == 0
    h.services.clients.forget()
    ok(await authenticate(h, registered, "ES256", "k1"))
    assert_invalid_client(await authenticate(h, published, "ES256", "k1"))
    with sqlite3.connect(tmp_path / "authsvc.db") as conn:
        row = conn.execute("SELECT jwks_uri FROM clients WHERE client_id = ?", (CLIENT,)).fetchone()
    assert row == (None,)
