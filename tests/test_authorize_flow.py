"""The authorization code flow through the ASGI app: sign in on the hosted page, consent,
redeem the code with PKCE, SSO for a second client, and the single use of codes."""

from __future__ import annotations

import base64
import hashlib
import secrets
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import httpx

from authsvc.store.records import Client
from tests.support import ISSUER, AppHarness, claims_of

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


async def test_sign_in_consent_redeem_and_sso(harness: AppHarness) -> None:
    await harness.add_user()
    await add_browser_client(harness, "spa", first_party=True)
    await add_browser_client(harness, "third", first_party=False)
    verifier, challenge = pkce()
    page = await harness.client.get("/authorize", params=authorize_params("spa", challenge))
    assert page.status_code == 200
    assert 'name="username"' in page.text
    form = form_of(page)
    assert form.action == "/authorize"
    wrong = await harness.client.post(
        "/authorize", data={**form.hidden, "username": "alice", "password": "wrong password"}
    )
    assert wrong.status_code == 200
    assert "incorrect" in wrong.text
    form = form_of(wrong)
    signed_in = await harness.client.post(
        "/authorize", data={**form.hidden, "username": "alice", "password": "correct horse"}
    )
    got = callback(signed_in)
    assert got["state"] == "st-1"
    assert got["iss"] == ISSUER
    token = await harness.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": got["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": "spa",
        },
    )
    assert token.status_code == 200, token.text
    body = token.json()
    assert set(body) >= {"access_token", "refresh_token", "id_token"}
    id_claims = claims_of(body["id_token"])
    assert id_claims["aud"] == "spa"
    assert id_claims["nonce"] == "n-1"
    assert id_claims["sid"] == claims_of(body["access_token"])["sid"]
    assert (await harness.me(body["access_token"])).status_code == 200
    again = await harness.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": got["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": "spa",
        },
    )
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert (await harness.refresh(body["refresh_token"], client_id="spa")).status_code == 400
    # SSO: the third-party client needs no password, but consent.
    verifier2, challenge2 = pkce()
    consent = await harness.client.get("/authorize", params=authorize_params("third", challenge2))
    assert consent.status_code == 200
    assert 'value="allow"' in consent.text
    allowed = await harness.client.post("/authorize", data={**form_of(consent).hidden, "consent": "allow"})
    got2 = callback(allowed)
    token2 = await harness.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": got2["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier2,
            "client_id": "third",
        },
    )
    assert token2.status_code == 200, token2.text
    # Remembered: straight back with a code.
    _v3, challenge3 = pkce()
    remembered = await harness.client.get("/authorize", params=authorize_params("third", challenge3))
    assert "code" in callback(remembered)
