"""A browser's side of authsvc's sign-in: a public first-party client, the hosted pages, codes by SSO.

The client is made through the CLI (``--public --first-party``: no secret, no
consent page). A sign-in is what a browser does: GET /authorize, read the
login form (its action and every hidden input, never hard-coded), POST the
username and password with the cookies it set, follow nothing: the answer is
a 303 to the redirect URI with a code. With the SSO cookie it leaves, every
further GET /authorize answers 303 with a fresh code at once: that is how the
bench mints the codes its authorization_code row redeems, before the timed run.
Every code has its own PKCE verifier (S256), state and nonce.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urljoin, urlsplit

from benchkit.config import PASSWORD
from benchkit.seeding import AuthsvcServer
from benchkit.servers import run_cli
from benchkit.stats import percentile

__all__ = [
    "CODE_SCOPE",
    "REDIRECT_URI",
    "Form",
    "Minted",
    "SignIn",
    "authorize_query",
    "authorize_with_session",
    "callback_problem",
    "code_body",
    "mint_codes",
    "parse_forms",
    "pkce_pair",
    "seed_spa_client",
    "sign_in",
]

REDIRECT_URI = "http://127.0.0.1/cb"
#: The same scopes on both sides: an ID token, a refresh token (the peer needs offline_access for
#: one; authsvc accepts it), and the API scopes of the access token.
CODE_SCOPE = "openid offline_access read write"


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)  # hidden (and other valued) inputs
    inputs: dict[str, str] = field(default_factory=dict)  # every named input: its type
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (name, value) of submit buttons


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._open: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._open = Form(a.get("action", ""), a.get("method", "get").lower())
            self.forms.append(self._open)
        elif self._open is None:
            return
        elif tag == "input" and a.get("name"):
            kind = a.get("type", "text").lower()
            self._open.inputs[a["name"]] = kind
            if kind == "hidden" or "value" in a:
                self._open.fields[a["name"]] = a.get("value", "")
        elif tag == "button" and a.get("name"):
            self._open.buttons.append((a["name"], a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def parse_forms(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(32)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def seed_spa_client(server: AuthsvcServer, run_id: str) -> str:
    """A public, first-party client with the authorization_code and refresh_token grants."""
    client_id = f"bench-spa-{server.workdir.name.replace('_', '-').lower()}-{run_id}"
    run_cli(
        server.env,
        server.workdir,
        "clients",
        "add",
        client_id,
        "--public",
        "--first-party",
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--redirect-uri",
        REDIRECT_URI,
        "--scope",
        CODE_SCOPE,
    )
    return client_id


def authorize_query(client_id: str, challenge: str, state: str, nonce: str) -> str:
    """The query of an authorization request (PKCE S256, ``CODE_SCOPE``, ``REDIRECT_URI``)."""
    return urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": CODE_SCOPE,
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )


def callback_problem(response: Any, state: str, issuer: str) -> str | None:
    """What is wrong with an answer that should be a 303 to ``REDIRECT_URI`` with a code, its
    ``state`` and ``iss`` as sent (None: nothing)."""
    location = response.headers.get("location", "")
    if response.status_code != 303 or not location.startswith(REDIRECT_URI + "?"):
        got = f"{response.status_code} Location={location[:200]!r}"
        return f"expected a 303 to {REDIRECT_URI} with a code, got {got}"
    query = parse_qs(urlsplit(location).query)
    if "error" in query:
        return f"an error in the callback: {location[:300]}"
    if query.get("state") != [state]:
        return f"state not returned as sent: {location[:300]}"
    if query.get("iss") != [issuer]:
        return f"iss {query.get('iss')} is not the issuer {issuer}"
    if "code" not in query:
        return f"no code in the callback: {location[:300]}"
    return None


def _code_from(response: Any, state: str, issuer: str) -> str:
    """The code of a 303 to the redirect URI, its state and iss checked."""
    problem = callback_problem(response, state, issuer)
    if problem is not None:
        raise RuntimeError(f"/authorize: {problem} {response.text[:300]!r}")
    return parse_qs(urlsplit(response.headers["location"]).query)["code"][0]


@dataclass
class SignIn:
    code: str
    verifier: str
    page_ms: float  # GET /authorize, the login page
    post_ms: float  # POST of the login form, answered 303 with the code


def sign_in(client: Any, server: AuthsvcServer, client_id: str) -> SignIn:
    """One browser sign-in through the hosted page, on ``client`` (an httpx.Client, cookies kept).

    Reads the login form's action and hidden inputs, posts them with the username and
    password; a consent page (a client that is not first-party) would be allowed."""
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    t0 = time.perf_counter()
    page = client.get("/authorize?" + authorize_query(client_id, challenge, state, nonce))
    t1 = time.perf_counter()
    if page.status_code != 200:
        raise RuntimeError(f"GET /authorize without a session: {page.status_code} {page.text[:300]!r}")
    forms = [f for f in parse_forms(page.text) if f.method == "post" and "password" in f.inputs]
    if not forms:
        raise RuntimeError(f"GET /authorize: no login form with a password input: {page.text[:500]!r}")
    form = forms[0]
    data = {**form.fields, "username": server.username, "password": PASSWORD}
    answer = client.post(urljoin(str(page.url), form.action), data=data)
    t2 = time.perf_counter()
    for _ in range(2):  # a consent page, for a client that is not first-party
        consent = [f for f in parse_forms(answer.text) if ("consent", "allow") in f.buttons]
        if answer.status_code != 200 or not consent:
            break
        answer = client.post(
            urljoin(str(answer.url), consent[0].action), data={**consent[0].fields, "consent": "allow"}
        )
    code = _code_from(answer, state, server.url)
    return SignIn(code, verifier, (t1 - t0) * 1000, (t2 - t1) * 1000)


def authorize_with_session(client: Any, server: AuthsvcServer, client_id: str) -> tuple[str, str]:
    """(code, verifier) of one GET /authorize on ``client``, a browser signed in (303 at once)."""
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    response = client.get("/authorize?" + authorize_query(client_id, challenge, state, nonce))
    return _code_from(response, state, server.url), verifier


@dataclass
class Minted:
    codes: list[tuple[str, str]]  # (code, code_verifier)
    seconds: float
    p50_first_ms: float  # latency of GET /authorize with the SSO cookie, first and last tenth
    p50_last_ms: float

    @property
    def rate(self) -> float:
        return len(self.codes) / self.seconds if self.seconds > 0 else 0.0


def mint_codes(
    server: AuthsvcServer, client_id: str, cookies: Any, count: int, concurrency: int = 8
) -> Minted:
    """``count`` codes, one GET /authorize each with the browser's SSO cookie (303, no page)."""
    return asyncio.run(_mint(server, client_id, cookies, count, concurrency))


async def _mint(server: AuthsvcServer, client_id: str, cookies: Any, count: int, concurrency: int) -> Minted:
    import httpx

    results: list[tuple[int, str, str, float]] = []
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=server.url, cookies=cookies, timeout=60, limits=limits) as client:

        async def one(index: int) -> None:
            verifier, challenge = pkce_pair()
            state, nonce = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
            async with gate:
                t0 = time.perf_counter()
                response = await client.get(
                    "/authorize?" + authorize_query(client_id, challenge, state, nonce)
                )
                elapsed = time.perf_counter() - t0
            results.append((index, _code_from(response, state, server.url), verifier, elapsed * 1000))

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        seconds = time.perf_counter() - start
    results.sort()
    tenth = max(1, count // 10)
    first = sorted(r[3] for r in results[:tenth])
    last = sorted(r[3] for r in results[-tenth:])
    return Minted(
        [(code, verifier) for _, code, verifier, _ in results],
        seconds,
        percentile(first, 0.5),
        percentile(last, 0.5),
    )


def code_body(code: str, verifier: str, client_id: str) -> str:
    """The token request of a public client redeeming ``code`` (RFC 6749 §4.1.3, RFC 7636 §4.5)."""
    return (
        f"grant_type=authorization_code&code={quote(code, safe='')}"
        f"&redirect_uri={quote(REDIRECT_URI, safe='')}&code_verifier={quote(verifier, safe='')}"
        f"&client_id={quote(client_id, safe='')}"
    )
