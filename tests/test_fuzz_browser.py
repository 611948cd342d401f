"""Browser sign-in's endpoints against the OpenAPI document (schemathesis), and hypothesis over /authorize.

The same checks as tests/test_fuzz_openapi.py (no 5xx; status, content type,
headers and body as documented) over /authorize, /userinfo, /logout and
/par, each request sent as generated and again past its first gate (a
registered client and redirect URI at /authorize, a bearer token with
``openid`` at /userinfo, the client's Basic credentials at /par). Then
hypothesis builds /authorize requests from near-valid and hostile parts and
holds every answer to the contract: never a 5xx, a page carries the framing
headers, and a redirect goes only to a redirect URI registered for the client
(a loopback one on any port), with ``iss``; and the code grant at /token
answers any form with a JSON 4xx.
"""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from authsvc.app import create_app
from authsvc.client_secrets import generate_secret, hash_generated
from authsvc.clock import SystemClock
from authsvc.store.records import Client
from tests.browser_flow import authorization_url, callback_query, pkce_pair, sign_in
from tests.support import ISSUER, make_settings
from tests.test_fuzz_openapi import CHECKS

BROWSER_OPERATIONS = [
    ("GET", "/authorize"),
    ("POST", "/authorize"),
    ("GET", "/userinfo"),
    ("POST", "/userinfo"),
    ("GET", "/logout"),
    ("POST", "/logout"),
    ("POST", "/par"),
]
MAX_EXAMPLES = 30 if os.environ.get("CI") else 15
LOOPBACK = "http://127.0.0.1/cb"
WEB = "https://rp.example/cb"
PASSWORD = "correct horse battery"
SCOPES = frozenset({"openid", "profile", "email", "offline_access"})


def _client(client_id: str, redirect_uri: str, secret: str | None, **flags: Any) -> Client:
    return Client(
        id=client_id,
        public=secret is None,
        grant_types=frozenset({"authorization_code", "refresh_token"}),
        scopes=SCOPES,
        audiences=(),
        secret_hash=hash_generated(secret) if secret else None,
        redirect_uris=(redirect_uri,),
        **flags,
    )


async def _seed(tmp_path: Path) -> dict[str, str]:
    """A user, a public and a confidential browser client, and an access token with openid (signed in
    through the pages), in the database the fuzzed app will open."""
    settings = make_settings(tmp_path, signing_alg="EdDSA")
    app = create_app(settings, SystemClock())
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    try:
        services = app.state.services
        await services.users.add(
            "alice",
            await services.hasher.hash(PASSWORD),
            services.clock.now(),
            username_key="alice",
            scopes=frozenset({"read"}),
            email="alice@example.com",
            full_name="Alice Example",
        )
        secret = generate_secret()
        now = services.clock.now()
        await services.clients.store.add(_client("spa", LOOPBACK, None, first_party=True), now)
        await services.clients.store.add(
            _client("web", WEB, secret, post_logout_redirect_uris=("https://rp.example/bye",)), now
        )
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ISSUER) as browser:
            verifier, challenge = pkce_pair()
            redirect_uri = "http://127.0.0.1:8080/cb"
            query = await sign_in(
                browser,
                authorization_url(
                    ISSUER,
                    response_type="code",
                    client_id="spa",
                    redirect_uri=redirect_uri,
                    scope="openid profile",
                    code_challenge=challenge,
                    code_challenge_method="S256",
                ),
                "alice",
                PASSWORD,
            )
            form = {
                "grant_type": "authorization_code",
                "client_id": "spa",
                "code": query["code"],
                "code_verifier": verifier,
                "redirect_uri": redirect_uri,
            }
            tokens = (await browser.post("/token", data=form)).json()
        basic = base64.b64encode(f"web:{secret}".encode()).decode()
        return {"bearer": f"Bearer {tokens['access_token']}", "basic": f"Basic {basic}"}
    finally:
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
def app_and_credentials(tmp_path: Path) -> tuple[Any, dict[str, str]]:
    credentials = asyncio.run(_seed(tmp_path))
    return create_app(make_settings(tmp_path, signing_alg="EdDSA")), credentials


def test_the_document_lists_the_browser_operations(app_and_credentials: tuple[Any, dict[str, str]]) -> None:
    app, _ = app_and_credentials
    document = app.openapi()
    found = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    missing = sorted(set(BROWSER_OPERATIONS) - found)
    assert not missing, f"not in /openapi.json: {missing}"


def _valid_authorize() -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": "spa",
        "redirect_uri": "http://127.0.0.1:8080/cb",
        "scope": "openid",
        "code_challenge": pkce_pair()[1],
        "code_challenge_method": "S256",
    }


@pytest.mark.parametrize(
    ("method", "path"), BROWSER_OPERATIONS, ids=[f"{m} {p}" for m, p in BROWSER_OPERATIONS]
)
def test_every_browser_operation_conforms_to_the_document(
    app_and_credentials: tuple[Any, dict[str, str]], method: str, path: str
) -> None:
    app, credentials = app_and_credentials
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    try:
        operation = api[path][method]
    except (KeyError, LookupError):
        pytest.fail(f"{method} {path} is not in /openapi.json")
    valid_header = {"/userinfo": credentials["bearer"], "/par": credentials["basic"]}.get(path)

    @given(
        case=st.one_of(
            operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
            operation.as_strategy(schemathesis.GenerationMode.NEGATIVE),
        )
    )
    @settings(
        max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def run(case: Any) -> None:
        case.call_and_validate(checks=CHECKS)
        if valid_header is not None:
            case.call_and_validate(checks=CHECKS, headers={"Authorization": valid_header})
        if path == "/authorize" and method == "GET" and isinstance(case.query, dict):
            # past the first gate: a registered client and redirect URI, the other parameters as generated
            generated = {k: v for k, v in case.query.items() if k not in ("client_id", "redirect_uri")}
            case.query = {**_valid_authorize(), **generated}
            case.call_and_validate(checks=CHECKS)

    run()


# --- hypothesis: /authorize from near-valid and hostile parts --------------------------------------
_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
_parts = {
    "response_type": st.sampled_from(["code", "token", "code id_token", "", "CODE"]) | _text,
    "client_id": st.sampled_from(["spa", "web", "nobody", "", "spa ", "SPA"]) | _text,
    "redirect_uri": st.sampled_from(
        [
            LOOPBACK,
            "http://127.0.0.1:8080/cb",
            "http://127.0.0.1:65535/cb",
            WEB,
            WEB + "/",
            "https://rp.example@evil.example/cb",
            "http://127.0.0.1:8080@evil.example/cb",
            "http://localhost:8080/cb",
            "//evil.example/cb",
            "https://evil.example/cb",
            "",
        ]
    )
    | _text,
    "scope": st.sampled_from(["openid", "openid profile email", "read", "openid admin", ""]) | _text,
    "state": _text,
    "code_challenge": st.sampled_from([pkce_pair()[1], "", "x" * 43, "+" * 43]) | _text,
    "code_challenge_method": st.sampled_from(["S256", "plain", "s256", ""]) | _text,
    "nonce": _text,
    "prompt": st.sampled_from(["none", "login", "consent", "none login", "select_account"]) | _text,
    "max_age": st.sampled_from(["0", "60", "-1", "1e9", "99999999999999999999"]) | _text,
    "login_hint": _text,
    "request_uri": st.sampled_from(["urn:ietf:params:oauth:request_uri:x", "https://evil.example/r"]) | _text,
}
_valid_pairs = st.sampled_from(
    [("spa", LOOPBACK), ("spa", "http://127.0.0.1:8080/cb"), ("spa", "http://127.0.0.1:1/cb"), ("web", WEB)]
)


@st.composite
def _queries(draw: Any) -> dict[str, str]:
    """Mostly a valid request with one to four parts replaced; sometimes only hostile parts."""
    client_id, redirect_uri = draw(_valid_pairs)
    query = {**_valid_authorize(), "client_id": client_id, "redirect_uri": redirect_uri, "state": "s"}
    names = draw(st.lists(st.sampled_from(sorted(_parts)), min_size=1, max_size=4, unique=True))
    for name in names:
        value = draw(st.none() | _parts[name])
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return query


_REGISTERED = {"spa": "loopback", "web": WEB}


def _allowed(client_id: str, location: str) -> bool:
    """A redirect target registered for the client: exact, or the loopback URI on any port."""
    base = location.split("?", 1)[0]
    if _REGISTERED.get(client_id) == WEB:
        return base == WEB
    if client_id == "spa":
        parts = urlsplit(base)
        return (parts.scheme, parts.hostname, parts.path, parts.username) == (
            "http",
            "127.0.0.1",
            "/cb",
            None,
        )
    return False


@pytest.fixture
async def browser_app(harness_factory: Any) -> Any:
    harness = await harness_factory()
    now = harness.clock.now()
    await harness.services.clients.store.add(_client("spa", LOOPBACK, None, first_party=True), now)
    await harness.services.clients.store.add(_client("web", WEB, generate_secret()), now)
    return harness


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=_queries(), method=st.sampled_from(["GET", "POST"]))
async def test_authorize_redirects_only_to_registered_uris(
    browser_app: Any, query: dict[str, str], method: str
) -> None:
    client = browser_app.client
    if method == "GET":
        answer = await client.get("/authorize?" + urlencode(query))
    else:
        answer = await client.post(
            "/authorize",
            content=urlencode(query),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert answer.status_code < 500, f"{answer.status_code} for {query}: {answer.text[:300]}"
    event(f"status {answer.status_code}")
    if answer.status_code in (301, 302, 303, 307, 308):
        location = answer.headers["location"]
        assert answer.status_code == 303, location
        assert _allowed(query.get("client_id", ""), location), f"redirected to {location!r} for {query}"
        back = callback_query(location)
        assert back.get("iss") == ISSUER, back
        assert "error" in back or "code" in back, back
        event(f"redirect with {back.get('error', 'a code')}")
    else:
        assert "location" not in answer.headers
        if answer.headers.get("content-type", "").startswith("text/html"):
            assert "frame-ancestors 'none'" in answer.headers.get("content-security-policy", "")
            assert answer.headers.get("x-frame-options", "").upper() == "DENY"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    form=st.fixed_dictionaries(
        {"grant_type": st.just("authorization_code")},
        optional={
            "code": _text,
            "code_verifier": st.sampled_from([pkce_pair()[0], "x" * 43]) | _text,
            "redirect_uri": _parts["redirect_uri"],
            "client_id": _parts["client_id"],
        },
    )
)
async def test_code_grant_answers_any_form_with_a_json_4xx(browser_app: Any, form: dict[str, str]) -> None:
    answer = await browser_app.client.post("/token", data=form)
    assert 400 <= answer.status_code < 500, f"{answer.status_code} for {form}: {answer.text[:300]}"
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"] in {"invalid_request", "invalid_grant", "invalid_client"}, answer.text
