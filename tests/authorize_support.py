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


async def add_browser_client(harness: AppHarness, client_id: str, *, first_party: bool) -> None:
    client = Client(
        id=client_id,
        public=True,
        grant_types=frozenset({"authorization_code", "refresh_token"}),
        scopes=frozenset({"openid", "profile", "email", "read"}),
        audiences=(),
        redirect_uris=(REDIRECT,),
        first_party=first_party,
    )
    await harness.services.clients.store.add(client, harness.clock.now())


def authorize_params(client_id: str, challenge: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client_id,
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
