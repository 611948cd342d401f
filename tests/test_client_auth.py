"""Client registry and client authentication at /token, /revoke and /introspect.

client_secret_basic (RFC 6749 §2.3.1 form-encoding), client_secret_post, the
built-in public default client, per-client grants and scopes, and how
secrets are stored (salted SHA-256 for generated ones, argon2id for chosen
ones; never in clear, never logged). private_key_jwt is in
test_private_key_jwt.py, the client_credentials grant in
test_client_credentials.py.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
from sqlalchemy import select

from authsvc.client_secrets import generate_secret, hash_generated
from authsvc.store.records import Client
from authsvc.store.sql.tables import clients as clients_table
from tests.support import ISSUER, AppHarness, claims_of

Factory = Callable[..., Any]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ENDPOINTS = ("/token", "/revoke", "/introspect")


# --- helpers shared with the other client test modules -------------------------------------------
async def add_client(
    h: AppHarness,
    client_id: str = "svc",
    *,
    secret: str | None = None,
    argon2: bool = False,
    public: bool = False,
    grants: tuple[str, ...] = ("client_credentials",),
    scopes: tuple[str, ...] = ("read", "write"),
    audiences: tuple[str, ...] = (),
    ttl: int | None = None,
    jwks: str | None = None,
) -> str:
    """Register a client straight in the store; returns its secret ("" when it has none)."""
    secret_hash = None
    if not public and jwks is None:
        secret = secret or generate_secret()
        secret_hash = await h.services.hasher.hash(secret) if argon2 else hash_generated(secret)
    client = Client(
        id=client_id,
        public=public,
        grant_types=frozenset(grants),
        scopes=frozenset(scopes),
        audiences=audiences,
        access_token_ttl=ttl,
        secret_hash=secret_hash,
        jwks=jwks,
    )
    await h.services.clients.store.add(client, h.clock.now())
    return secret or ""


def basic(client_id: str, secret: str) -> dict[str, str]:
    """client_secret_basic as RFC 6749 §2.3.1 wants it: form-encode both, then Base64."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def header_of(token: str) -> dict[str, Any]:
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))  # type: ignore[no-any-return]


def assert_invalid_client(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"] == 'Basic realm="authsvc"'


async def client_token(h: AppHarness, headers: dict[str, str], **data: str) -> httpx.Response:
    return await h.client.post("/token", data={"grant_type": "client_credentials", **data}, headers=headers)


async def call(
    h: AppHarness, endpoint: str, headers: dict[str, str] | None = None, **data: str
) -> httpx.Response:
    """One authenticated request per endpoint: a token grant, or a revoke/introspect of a junk token."""
    form = {"grant_type": "client_credentials"} if endpoint == "/token" else {"token": "junk"}
    return await h.client.post(endpoint, data={**form, **data}, headers=headers or {})


# --- the registry ----------------------------------------------------------------------------
async def test_registry_rows_hold_only_salted_hashes(db_harness: AppHarness) -> None:
    h = db_harness
    generated = await add_client(h, "gen")
    chosen = "an operator-chosen secret"
    await add_client(h, "chosen", secret=chosen, argon2=True)
    other = await add_client(h, "gen2", secret=generated)  # same secret, another salt

    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", generated)
    assert len(base64.urlsafe_b64decode(generated + "=")) == 32
    async with h.services.clients.store.engine.connect() as conn:
        rows = {r.client_id: r._mapping for r in (await conn.execute(select(clients_table))).all()}
    assert re.fullmatch(r"sha256\$[0-9a-f]{32}\$[0-9a-f]{64}", rows["gen"]["secret_hash"])
    assert rows["gen"]["secret_hash"] != rows["gen2"]["secret_hash"]
    assert rows["chosen"]["secret_hash"].startswith("$argon2id$")
    dumped = json.dumps([{k: str(v) for k, v in row.items()} for row in rows.values()])
    assert generated not in dumped
    assert other not in dumped
    assert chosen not in dumped
    assert rows["gen"]["client_type"] == "confidential"

    for client_id, secret in (("gen", generated), ("chosen", chosen)):
        assert (await client_token(h, basic(client_id, secret))).status_code == 200

    # The other fields round-trip through the row.
    await add_client(h, "svc", scopes=("a", "b"), audiences=("api-1", "api-2"), ttl=120)
    await add_client(h, "spa", public=True, grants=("password", "refresh_token"), scopes=())
    svc = await h.services.clients.get("svc")
    assert svc is not None
    assert (svc.public, svc.grant_types, svc.scopes) == (False, {"client_credentials"}, {"a", "b"})
    assert (svc.audiences, svc.access_token_ttl) == (("api-1", "api-2"), 120)
    spa = await h.services.clients.get("spa")
    assert spa is not None
    assert spa.public
    assert spa.secret_hash is None
    assert await h.services.clients.get("nobody") is None


# --- client_secret_basic and client_secret_post ------------------------------------------------------
async def test_secret_basic_form_encodes_id_and_secret(db_harness: AppHarness) -> None:
    h = db_harness
    client_id = "svc:ü%41+x"
    secret = "s:é%2B+ " + generate_secret()
    await add_client(h, client_id, secret=secret)
    auth = basic(client_id, secret)

    issued = await client_token(h, auth)
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    assert claims_of(token)["client_id"] == client_id
    introspected = await h.client.post("/introspect", data={"token": token}, headers=auth)
    assert introspected.status_code == 200
    assert introspected.json()["active"] is True
    revoked = await h.client.post("/revoke", data={"token": token}, headers=auth)
    assert revoked.status_code == 200

    # Without the form-encoding the same bytes mean something else: refused.
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    assert_invalid_client(await client_token(h, {"Authorization": f"Basic {raw}"}))
    # client_secret_post carries the same values as ordinary form fields.
    posted = await client_token(h, {}, client_id=client_id, client_secret=secret)
    assert posted.status_code == 200, posted.text
    # Ids longer than the column are unknown clients on both engines, not errors.
    assert_invalid_client(await client_token(h, basic("é" * 5000, secret)))
    assert_invalid_client(await call(h, "/introspect", client_id="x" * 10000, client_secret=secret))


async def test_secret_post_and_argon2_secrets_at_every_endpoint(harness: AppHarness) -> None:
    h = harness
    generated = await add_client(h, "gen")
    chosen = "chosen secret, long enough"
    await add_client(h, "chosen", secret=chosen, argon2=True)
    for client_id, secret in (("gen", generated), ("chosen", chosen)):
        for endpoint in ENDPOINTS:
            response = await call(h, endpoint, client_id=client_id, client_secret=secret)
            assert response.status_code == 200, (endpoint, response.text)
            response = await call(h, endpoint, basic(client_id, secret))
            assert response.status_code == 200, (endpoint, response.text)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_bad_credentials_are_invalid_client(harness: AppHarness, endpoint: str) -> None:
    h = harness
    secret = await add_client(h, "svc")
    chosen = "chosen secret, long enough"
    await add_client(h, "chosen", secret=chosen, argon2=True)
    bad_headers = [
        basic("svc", secret + "x"),
        basic("svc", ""),
        basic("chosen", chosen.upper()),
        basic("nobody", secret),
        basic("x" * 300, secret),
        {"Authorization": "Basic !!!not-base64!!!"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()},
    ]
    for headers in bad_headers:
        assert_invalid_client(await call(h, endpoint, headers))
    for form in (
        {"client_id": "svc", "client_secret": secret[:-1]},
        {"client_id": "nobody", "client_secret": secret},
        {"client_secret": secret},  # no client_id
    ):
        assert_invalid_client(await call(h, endpoint, **form))


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_two_methods_at_once_is_invalid_request(harness: AppHarness, endpoint: str) -> None:
    h = harness
    secret = await add_client(h, "svc")
    assertion = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": "a.b.c"}
    for headers, form in (
        (basic("svc", secret), {"client_id": "svc", "client_secret": secret}),
        (basic("svc", secret), assertion),
        ({}, {"client_id": "svc", "client_secret": secret, **assertion}),
    ):
        response = await call(h, endpoint, headers, **form)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"


async def test_public_clients_may_not_send_a_secret(harness: AppHarness) -> None:
    h = harness
    await h.add_user()
    await add_client(h, "spa", public=True, grants=("password", "refresh_token"), scopes=("read",))
    login = {"grant_type": "password", "username": "alice", "password": "correct horse"}
    for client_id in ("spa", "cli"):
        for secret in ("anything", ""):
            response = await h.client.post("/token", data=login, headers=basic(client_id, secret))
            assert_invalid_client(response)
        response = await h.client.post(
            "/token", data={**login, "client_id": client_id, "client_secret": "anything"}
        )
        assert_invalid_client(response)
        for endpoint in ("/revoke", "/introspect"):
            assert_invalid_client(await call(h, endpoint, basic(client_id, "anything")))
        # Without a secret a public client is just named (auth method "none").
        response = await h.client.post("/token", data={**login, "client_id": client_id})
        assert response.status_code == 200, response.text
        assert claims_of(response.json()["access_token"])["client_id"] == client_id


async def test_confidential_client_naming_itself_only_is_invalid_client(harness: AppHarness) -> None:
    h = harness
    await h.add_user()
    await add_client(h, "svc", grants=("client_credentials", "password", "refresh_token"))
    for endpoint in ENDPOINTS:
        assert_invalid_client(await call(h, endpoint, client_id="svc"))
    assert_invalid_client(await h.login(client_id="svc"))


async def test_client_credentials_needs_client_authentication(harness: AppHarness) -> None:
    assert_invalid_client(await call(harness, "/token"))
    assert_invalid_client(await call(harness, "/introspect"))


# --- the default client, grants and scopes per client -------------------------------------------------
async def test_default_client_exists_with_password_and_refresh(harness: AppHarness) -> None:
    h = harness
    await h.add_user()
    default = await h.services.clients.get("cli")
    assert default is not None
    assert default.public
    assert default.grant_types == {"password", "refresh_token"}

    anonymous = await h.login()  # neither client authentication nor client_id: acts as cli
    assert anonymous.status_code == 200, anonymous.text
    assert claims_of(anonymous.json()["access_token"])["client_id"] == "cli"
    named = await h.login(client_id="cli")
    assert named.status_code == 200
    refreshed = await h.refresh(anonymous.json()["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert claims_of(refreshed.json()["access_token"])["client_id"] == "cli"
    # The default client may not use client_credentials.
    response = await call(h, "/token", client_id="cli")
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


async def test_default_client_id_follows_the_setting(harness_factory: Factory) -> None:
    h = await harness_factory(default_client_id="first-party")
    await h.add_user()
    response = await h.login()
    assert response.status_code == 200
    assert claims_of(response.json()["access_token"])["client_id"] == "first-party"
    response = await h.login(client_id="cli")  # no longer a known client
    assert_invalid_client(response)


async def test_grants_are_checked_per_client(harness: AppHarness) -> None:
    h = harness
    await h.add_user()
    machine = await add_client(h, "machine")  # client_credentials only
    web = await add_client(
        h, "web", grants=("password", "refresh_token"), scopes=("read", "write")
    )  # no client_credentials
    await add_client(h, "spa", public=True, grants=("refresh_token",), scopes=("read",))

    response = await h.login(client_id="machine", client_secret=machine)
    assert (response.status_code, response.json()["error"]) == (400, "unauthorized_client")
    login = await h.login(client_id="web", client_secret=web)
    assert login.status_code == 200, login.text
    refresh_token = login.json()["refresh_token"]
    response = await h.refresh(refresh_token, client_id="machine", client_secret=machine)
    assert (response.status_code, response.json()["error"]) == (400, "unauthorized_client")
    response = await client_token(h, basic("web", web))
    assert (response.status_code, response.json()["error"]) == (400, "unauthorized_client")
    response = await h.login(client_id="spa")
    assert (response.status_code, response.json()["error"]) == (400, "unauthorized_client")
    # The refresh token stays bound to web, and web can use it.
    response = await h.client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        headers=basic("web", web),
    )
    assert response.status_code == 200, response.text


async def test_scopes_are_limited_per_client(harness: AppHarness) -> None:
    h = harness
    await h.add_user(scopes="read write admin")
    web = await add_client(h, "web", grants=("password", "refresh_token"), scopes=("read", "write"))
    auth = {"client_id": "web", "client_secret": web}
    response = await h.login(**auth)
    assert response.json()["scope"] == "read write"  # omitted: what both the user and the client allow
    response = await h.login(scope="read", **auth)
    assert response.json()["scope"] == "read"
    response = await h.login(scope="admin", **auth)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_scope")
    response = await h.login()  # the default client: any scope the user holds
    assert response.json()["scope"] == "admin read write"


# --- constant time, logs, discovery -------------------------------------------------------------
async def test_generated_secrets_are_compared_in_constant_time(
    harness: AppHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hmac

    import authsvc.client_secrets as client_secrets

    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(client_secrets.hmac, "compare_digest", spy)
    secret = await add_client(harness, "svc")
    assert (await client_token(harness, basic("svc", secret))).status_code == 200
    assert_invalid_client(await client_token(harness, basic("svc", secret + "!")))
    assert len(calls) == 2


async def test_secrets_never_reach_the_logs(harness: AppHarness, caplog: pytest.LogCaptureFixture) -> None:
    h = harness
    caplog.set_level(logging.DEBUG)
    secret = await add_client(h, "svc")
    chosen = "chosen secret, long enough"
    await add_client(h, "chosen", secret=chosen, argon2=True)
    for endpoint in ENDPOINTS:
        await call(h, endpoint, basic("svc", secret))
        await call(h, endpoint, basic("svc", secret + "wrong"))
        await call(h, endpoint, client_id="chosen", client_secret=chosen)
        await call(h, endpoint, client_id="chosen", client_secret=chosen + "wrong")
        await call(h, endpoint, basic("svc", secret), client_id="svc", client_secret=secret)
    assert caplog.records  # the audit log did see these requests
    text = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    for leaked in (secret, chosen, basic("svc", secret)["Authorization"].split()[1]):
        assert leaked not in text


async def test_discovery_advertises_client_authentication(harness: AppHarness) -> None:
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        body = (await harness.client.get(path)).json()
        assert body["issuer"] == ISSUER
        assert body["token_endpoint"] == ISSUER + "/token"
        assert "client_credentials" in body["grant_types_supported"]
        methods = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
        assert body["token_endpoint_auth_methods_supported"] == [*methods, "none"]
        assert body["revocation_endpoint_auth_methods_supported"] == [*methods, "none"]
        assert body["introspection_endpoint_auth_methods_supported"] == methods
        for endpoint in ("token", "revocation", "introspection"):
            algs = body[f"{endpoint}_endpoint_auth_signing_alg_values_supported"]
            assert {"RS256", "ES256", "EdDSA"} <= set(algs)
            assert not any(alg.startswith("HS") or alg == "none" for alg in algs)
