"""What the authorization-code tests share: a browser client, PKCE pairs, reading the pages' forms
and the callback's query."""

from __future__ import annotations

import base64
import hashlib
import secrets
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import httpx

from authsvc.store.records import Client
from tests.support import AppHarness

REDIRECT = "http://127.0.0.1/callback"


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.hidden: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.action = a.get("action")
        elif tag == "input" and a.get("type") == "hidden":
            self.hidden[a["name"] or ""] = a.get("value") or ""


def form_of(page: httpx.Response) -> _Form:
    parser = _Form()
    parser.feed(page.text)
    return parser


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


LOGOUT_TARGET = "https://app.example/signed-out"


async def add_browser_client(
    harness: AppHarness,
    client_id: str,
    *,
    first_party: bool,
    refresh: bool = True,
    require_par: bool = False,
    web_origins: tuple[str, ...] = (),
) -> None:
    client = Client(
        id=client_id,
        public=True,
        grant_types=frozenset({"authorization_code", *(["refresh_token"] if refresh else [])}),
        scopes=frozenset({"openid", "profile", "email", "read"}),
        audiences=(),
        redirect_uris=(REDIRECT,),
        post_logout_redirect_uris=(LOGOUT_TARGET,),
        web_origins=web_origins,
        first_party=first_party,
        require_par=require_par,
    )
    await harness.services.clients.store.add(client, harness.clock.now())


def authorize_params(client: str, challenge: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client,
        "redirect_uri": REDIRECT,
        "scope": "openid profile read",
        "state": "st-1",
        "nonce": "n-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


def callback(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def sign_in(
    harness: AppHarness, client_id: str, challenge: str, password: str = "correct horse", **extra: str
) -> httpx.Response:
    """GET /authorize, then the login form: the answer to the form's POST."""
    page = await harness.client.get("/authorize", params=authorize_params(client_id, challenge, **extra))
    assert page.status_code == 200, page.text
    return await harness.client.post(
        "/authorize", data={**form_of(page).hidden, "username": "alice", "password": password}
    )


async def redeem(harness: AppHarness, client: str, code: str, verifier: str, **extra: str) -> httpx.Response:
    return await harness.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": client,
            **extra,
        },
    )


async def browser_tokens(harness: AppHarness, client_id: str = "spa", **extra: str) -> dict[str, str]:
    """A first-party client's tokens through the whole flow (signing in when needed)."""
    verifier, challenge = pkce()
    page = await harness.client.get("/authorize", params=authorize_params(client_id, challenge, **extra))
    if page.status_code == 200:
        page = await harness.client.post(
            "/authorize", data={**form_of(page).hidden, "username": "alice", "password": "correct horse"}
        )
    response = await redeem(harness, client_id, callback(page)["code"], verifier)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]
