"""The service against its own OpenAPI document (schemathesis), plus header fuzzing of /token.

schemathesis reads ``/openapi.json`` from the ASGI app (its ASGI transport runs
the app's lifespan), generates valid and invalid requests for every operation,
and checks that no answer is a server error and that every status code,
content type and body is the one the document declares. Success answers are
hard to reach by chance, so ``test_documented_answers_conform`` makes
real ones (every grant, introspection, revocation, the user, the JWKS and its
304, readiness) and validates them against the same document.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from authsvc.app import create_app
from authsvc.client_secrets import generate_secret, hash_generated
from authsvc.clock import SystemClock
from authsvc.runtime import Services
from authsvc.store.records import Client
from tests.support import AppHarness, make_settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 30 if os.environ.get("CI") else 15
CLIENT_ID = "fuzz-client"


async def _seed(tmp_path: Path) -> dict[str, str]:
    """A user, a confidential client and a live access token, in the database the app will open."""
    settings = make_settings(tmp_path, signing_alg="EdDSA")
    services = await Services.start(settings, SystemClock(), bootstrap_keys=True)
    try:
        await services.users.add(
            "alice",
            await services.hasher.hash("correct horse"),
            services.clock.now(),
            username_key="alice",
            scopes=frozenset({"read", "write"}),
            email="alice@example.com",
            full_name="Alice Example",
        )
        secret = generate_secret()
        await services.clients.store.add(
            Client(
                id=CLIENT_ID,
                public=False,
                grant_types=frozenset({"client_credentials"}),
                scopes=frozenset({"read"}),
                audiences=(),
                secret_hash=hash_generated(secret),
            ),
            services.clock.now(),
        )
        user = await services.users.by_username("alice")
        assert user is not None
        login = await services.families.start(user, services.clients.default, frozenset({"read"}))
        access = json.loads(login.body)["access_token"]
        basic = base64.b64encode(f"{CLIENT_ID}:{secret}".encode()).decode()
        return {"bearer": f"Bearer {access}", "basic": f"Basic {basic}"}
    finally:
        await services.close()


@pytest.fixture
def app_and_credentials(tmp_path: Path) -> tuple[Any, dict[str, str]]:
    credentials = asyncio.run(_seed(tmp_path))
    app = create_app(make_settings(tmp_path, signing_alg="EdDSA"))
    return app, credentials


OPERATIONS = [
    ("POST", "/token"),
    ("POST", "/revoke"),
    ("POST", "/introspect"),
    ("GET", "/users/me"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/oauth-authorization-server"),
    ("GET", "/.well-known/openid-configuration"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/authorize"),
    ("POST", "/authorize"),
    ("POST", "/par"),
    ("GET", "/userinfo"),
    ("POST", "/userinfo"),
    ("GET", "/logout"),
    ("POST", "/logout"),
]


def _strategy(operation: Any) -> Any:
    return st.one_of(
        operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
        operation.as_strategy(schemathesis.GenerationMode.NEGATIVE),
    )


def test_the_document_lists_every_operation(app_and_credentials: tuple[Any, dict[str, str]]) -> None:
    app, _ = app_and_credentials
    document = app.openapi()
    found = sorted((m.upper(), p) for p, ops in document["paths"].items() for m in ops)
    assert found == sorted(OPERATIONS), f"expected the fuzzed operations to be all of them, got {found}"


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_conforms_to_the_document(
    app_and_credentials: tuple[Any, dict[str, str]], method: str, path: str
) -> None:
    """Each generated request is sent as generated, and again with valid credentials for the route
    (a live bearer token at /users/me, a confidential client's Basic at the form endpoints), so the
    answers past authentication are held against the document too."""
    app, credentials = app_and_credentials
    api = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the app's lifespan
    operation = api[path][method]
    valid = {"/users/me": credentials["bearer"]}.get(path, credentials["basic"] if method == "POST" else None)

    @given(case=_strategy(operation))
    @settings(
        max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def run(case: Any) -> None:
        case.call_and_validate(checks=CHECKS)
        if valid is not None:
            case.call_and_validate(checks=CHECKS, headers={"Authorization": valid})

    run()


# --- real success and error answers, held against the same document --------------------------------
@pytest.fixture
async def seeded(harness_factory: Any) -> tuple[AppHarness, str]:
    harness: AppHarness = await harness_factory(signing_alg="EdDSA", login_max_per_user=2)
    await harness.add_user()
    secret = await harness.add_service_client(
        CLIENT_ID, scopes=frozenset({"read"}), audiences=("orders-api",)
    )
    return harness, secret


def _document(harness: AppHarness) -> Any:
    app = harness.app
    return schemathesis.openapi.from_dict(app.openapi())


async def test_documented_answers_conform(seeded: tuple[AppHarness, str]) -> None:
    harness, secret = seeded
    api = _document(harness)
    client = harness.client
    answers: list[tuple[str, str, httpx.Response]] = []

    def expect(method: str, path: str, response: httpx.Response, status: int) -> httpx.Response:
        assert response.status_code == status, f"expected {status} from {method} {path}, got {response.text}"
        answers.append((method, path, response))
        return response

    login = expect("POST", "/token", await harness.login(), 200).json()
    refreshed = expect("POST", "/token", await harness.refresh(login["refresh_token"]), 200).json()
    m2m = await client.post("/token", data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, secret))
    expect("POST", "/token", m2m, 200)
    expect("POST", "/token", await client.post("/token", data={"grant_type": "implicit"}), 400)
    expect(
        "POST",
        "/token",
        await client.post("/token", data={"grant_type": "client_credentials"}, auth=("a", "b")),
        401,
    )
    big = {"grant_type": "password", "pad": "x" * 70_000}
    expect("POST", "/token", await client.post("/token", data=big), 413)
    for _ in range(2):
        expect("POST", "/token", await harness.login(password="wrong"), 400)
    expect("POST", "/token", await harness.login(password="wrong"), 429)

    introspect = "/introspect"
    for token in (refreshed["access_token"], refreshed["refresh_token"], "garbage"):
        response = await client.post(introspect, data={"token": token}, auth=(CLIENT_ID, secret))
        expect("POST", introspect, response, 200)
    expect("POST", introspect, await client.post(introspect, data={"token": "x"}), 401)

    expect("GET", "/users/me", await harness.me(refreshed["access_token"]), 200)
    expect("GET", "/users/me", await client.get("/users/me"), 401)
    expect("GET", "/users/me", await harness.me("garbage"), 401)

    revoke = await client.post("/revoke", data={"token": refreshed["refresh_token"]})
    expect("POST", "/revoke", revoke, 200)
    expect("POST", "/revoke", await client.post("/revoke", data={"token": "x"}, auth=("a", "b")), 401)

    jwks = expect("GET", "/.well-known/jwks.json", await client.get("/.well-known/jwks.json"), 200)
    again = await client.get("/.well-known/jwks.json", headers={"If-None-Match": jwks.headers["etag"]})
    expect("GET", "/.well-known/jwks.json", again, 304)
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        expect("GET", path, await client.get(path), 200)
    for path in ("/healthz", "/readyz", "/metrics"):
        expect("GET", path, await client.get(path), 200)

    for method, path, response in answers:
        case = api[path][method].Case()
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as exc:
            pytest.fail(f"expected {method} {path} {response.status_code} to match the document: {exc}")


# --- hypothesis: arbitrary headers at the form endpoints and the bearer route ------------------------
_FORM = "application/x-www-form-urlencoded"
_token_chars = st.characters(codec="ascii", categories=["L", "N"], include_characters="!#$%&'*+-.^_`|~")
_header_names = st.one_of(
    st.sampled_from(
        [
            "authorization",
            "content-type",
            "content-length",
            "x-forwarded-for",
            "x-request-id",
            "transfer-encoding",
        ]
    ),
    st.text(_token_chars, min_size=1, max_size=20),
)
_header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80
)
_basic = st.builds(
    lambda user, password, raw: (
        "Basic " + (raw if raw is not None else base64.b64encode(f"{user}:{password}".encode()).decode())
    ),
    st.text(max_size=20),
    st.text(max_size=20),
    st.one_of(st.none(), st.text(st.characters(codec="ascii"), max_size=30)),
)
_authorization = st.one_of(_basic, st.builds(lambda v: "Bearer " + v, _header_values), _header_values)


def _clean(response: httpx.Response) -> None:
    assert response.status_code < 500, f"expected a 4xx at worst, got {response.status_code}: {response.text}"
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json"), response.headers
        assert isinstance(response.json().get("error"), str), f"expected an RFC error body: {response.text}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/token", "/revoke", "/introspect"]),
    authorization=st.lists(_authorization, max_size=2),
    extra=st.lists(st.tuples(_header_names, _header_values), max_size=4),
    body=st.one_of(
        st.just(b"grant_type=client_credentials&token=x"),
        st.just(b"grant_type=password&username=alice&password=correct+horse"),
        st.binary(max_size=200),
    ),
)
async def test_arbitrary_headers_at_form_endpoints(
    seeded: tuple[AppHarness, str],
    path: str,
    authorization: list[str],
    extra: list[tuple[str, str]],
    body: bytes,
) -> None:
    harness, _ = seeded
    request = harness.client.build_request("POST", path, content=body, headers={"content-type": _FORM})
    headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    headers += [(b"authorization", a.encode("latin-1")) for a in authorization]
    headers += [(n.encode("latin-1"), v.encode("latin-1")) for n, v in extra]
    request.headers = httpx.Headers(headers)
    _clean(await harness.client.send(request))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    authorization=st.lists(_authorization, max_size=2),
    extra=st.lists(st.tuples(_header_names, _header_values), max_size=3),
)
async def test_arbitrary_headers_at_users_me(
    seeded: tuple[AppHarness, str], authorization: list[str], extra: list[tuple[str, str]]
) -> None:
    harness, _ = seeded
    headers = [(b"authorization", a.encode("latin-1")) for a in authorization]
    headers += [(n.encode("latin-1"), v.encode("latin-1")) for n, v in extra if n.lower() != "content-length"]
    request = harness.client.build_request("GET", "/users/me")
    request.headers = httpx.Headers([*request.headers.raw, *headers])
    response = await harness.client.send(request)
    _clean(response)
    assert response.status_code in (400, 401, 413), f"expected a refusal, got {response.status_code}"
