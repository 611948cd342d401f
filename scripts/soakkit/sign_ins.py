"""Browser sign-ins: the hosted login page, codes with PKCE, SSO, refresh, logout, a replayed code.

Each sign-in chain is one browser: an httpx client of its own, so its cookies (the CSRF
cookie of the login form, then the SSO session) are its own, through the proxy to either
instance. It signs in through ``/authorize`` (the form's action and hidden inputs read
from the page, never hard-coded), redeems the code with its PKCE verifier, sometimes gets a
second code by SSO alone (a second refresh family in the same browser session), refreshes
the families a few times, and ends in one of three ways:

- plainly;
- ``logout``: ``/logout`` with the ID token as hint ends the browser session and revokes
  its families at once (CONTRACT.md "Browser sign-in"): every family's current refresh and
  access token is probed like a token revoked at ``/revoke``, and the browser's next
  ``/authorize`` must show the login page again, not a code;
- ``code_replay``: the first code presented again is refused and the family it opened is
  revoked (RFC 6749 §4.1.2): that family's current tokens are probed the same way.

A redemption that gets no answer, or a 5xx, ends the chain: the code may have been spent,
and a browser would start again. Redemptions go to the ledger (``code-accepted-twice``),
refreshes through ``Workload.refresh`` (the refresh rules), probes through
``Workload.probe_revoked``.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
from benchkit.browser import (
    CODE_SCOPE,
    REDIRECT_URI,
    authorize_query,
    callback_problem,
    parse_forms,
    pkce_pair,
)

from soakkit.clients import Workload, jose_parts, pause, token_id
from soakkit.ledger import CodeRedemption

__all__ = ["LOGOUT_URI", "REDIRECT_URI", "SCOPE", "SignIns"]

LOGOUT_URI = "http://127.0.0.1/signed-out"
SCOPE = CODE_SCOPE  # the soak's first-party browser client: ID, refresh and API tokens
ENDINGS = ("plain", "logout", "logout", "code_replay")
# A spent code is remembered (and its replay revokes its family) for AUTHSVC_AUTH_CODE_TTL
# (60 s) plus the access-token lifetime; a chain slowed down by faults replays no later.
REPLAY_WITHIN = 45.0


@dataclass
class Family:
    """One code's refresh family, as the browser holds it now."""

    code: str
    verifier: str
    refresh: str
    access: str
    id_token: str
    redeemed_at: float


class SignIns:
    def __init__(
        self,
        workload: Workload,
        users: list[tuple[str, str]],
        client_id: str,
        issuer: str,
        seed: int,
    ) -> None:
        self.workload = workload
        self.users = users
        self.client_id = client_id
        self.issuer = issuer
        self.rng = random.Random(seed + 1)
        self.count = 0

    async def loop(self, concurrency: int, stop: asyncio.Event) -> None:
        async def runner(slot: int) -> None:
            await asyncio.sleep(1.0 + slot * 1.3)  # after the refresh chains' staggered start
            while not stop.is_set():
                await self.chain(stop)
                await pause(stop, self.rng.uniform(0.5, 2.0))

        await asyncio.gather(*(runner(i) for i in range(concurrency)))

    async def chain(self, stop: asyncio.Event) -> None:
        self.count += 1
        chain = f"s{self.count}"
        async with httpx.AsyncClient(
            base_url=self.workload.base_url, timeout=httpx.Timeout(15.0, connect=5.0)
        ) as browser:
            families = await self._open_families(chain, browser)
            if not families:
                return
            for _ in range(self.rng.randint(2, 4)):
                if await pause(stop, self.rng.uniform(1.5, 3.5)):
                    return
                family = self.rng.choice(families)
                answer = await self.workload.refresh(chain, family.refresh, stop, client_id=self.client_id)
                if answer is None:
                    return  # refused or given up: the ledger judges why
                body = answer[0]
                family.refresh, family.access = body["refresh_token"], body["access_token"]
                family.id_token = body.get("id_token", family.id_token)
                await self.workload.use_access(family.access, "refresh")
            ending = self.rng.choice(ENDINGS)
            if ending == "logout":
                await self._logout(browser, families)
            elif ending == "code_replay" and time.time() - families[0].redeemed_at < REPLAY_WITHIN:
                await self._replay(chain, families[0])

    async def _open_families(self, chain: str, browser: httpx.AsyncClient) -> list[Family]:
        """A sign-in's family, and sometimes a second one by SSO (no password asked)."""
        families: list[Family] = []
        code = await self._sign_in(browser)
        while code is not None:
            family = await self._redeem(chain, *code)
            if family is None:
                break
            families.append(family)
            another = len(families) < 2 and self.rng.random() < 0.5
            code = await self._authorize_by_sso(browser) if another else None
        return families

    def _authorize_path(self, challenge: str, state: str) -> str:
        return "/authorize?" + authorize_query(self.client_id, challenge, state, secrets.token_urlsafe(12))

    def _code_check(self, state: str) -> Callable[[httpx.Response], str | None]:
        return lambda response: callback_problem(response, state, self.issuer)

    async def _sign_in(self, browser: httpx.AsyncClient) -> tuple[str, str] | None:
        """(code, verifier) of a sign-in through the hosted login page, or None."""
        name, password = self.rng.choice(self.users)
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(12)
        page = await self.workload.request(
            "authorize_page",
            "GET",
            self._authorize_path(challenge, state),
            browser=browser,
            check=_login_form,
        )
        if page is None or page.status_code != 200 or _login_form(page) is not None:
            return None
        form = next(f for f in parse_forms(page.text) if f.method == "post" and "password" in f.inputs)
        answer = await self.workload.request(
            "sign_in",
            "POST",
            urljoin(str(page.url), form.action),
            expect=(303,),
            check=self._code_check(state),
            browser=browser,
            data={**form.fields, "username": name, "password": password},
        )
        return _code_of(answer, verifier)

    async def _authorize_by_sso(self, browser: httpx.AsyncClient) -> tuple[str, str] | None:
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(12)
        answer = await self.workload.request(
            "authorize_sso",
            "GET",
            self._authorize_path(challenge, state),
            expect=(303,),
            check=self._code_check(state),
            browser=browser,
        )
        return _code_of(answer, verifier)

    async def _redeem(self, chain: str, code: str, verifier: str) -> Family | None:
        response = await self._present(chain, code, verifier)
        if response is None or response.status_code != 200:
            return None  # a lost answer ends the chain: the code may be spent
        body = response.json()
        family = Family(
            code, verifier, body["refresh_token"], body["access_token"], body["id_token"], time.time()
        )
        await self.workload.use_access(family.access, "code")
        return family

    async def _present(
        self, chain: str, code: str, verifier: str, *, deliberate: str = ""
    ) -> httpx.Response | None:
        """The code at ``/token``, into the ledger either way."""
        t0 = time.time()
        response = await self.workload.request(
            "code_replay" if deliberate else "code",
            "POST",
            "/token",
            expect=(400,) if deliberate else (200,),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
                "client_id": self.client_id,
            },
        )
        status = None if response is None else response.status_code
        self.workload.ledger.redemption(
            CodeRedemption(chain, token_id(code), t0, time.time(), status, deliberate)
        )
        return response

    async def _replay(self, chain: str, family: Family) -> None:
        """The first code again: refused, and the family it opened revoked with it."""
        response = await self._present(chain, family.code, family.verifier, deliberate="replay")
        if response is None or response.status_code != 400:
            return  # no answer (a fault): nothing is known to be revoked
        revoked_at = time.time()
        await self._probe([family], revoked_at, "code_replay")

    async def _logout(self, browser: httpx.AsyncClient, families: list[Family]) -> None:
        hint = families[-1].id_token
        header, _ = jose_parts(hint)
        state = secrets.token_urlsafe(8)
        query = {"id_token_hint": hint, "post_logout_redirect_uri": LOGOUT_URI, "state": state}

        def check(response: httpx.Response) -> str | None:
            location = response.headers.get("location", "")
            return None if location == f"{LOGOUT_URI}?state={state}" else f"Location {location[:120]!r}"

        answer = await self.workload.request(
            "logout",
            "GET",
            "/logout?" + urlencode(query),
            expect=(303,),
            kid=str(header["kid"]),  # a hint signed by a key the soak revoked is no hint
            check=check,
            browser=browser,
        )
        if answer is None or answer.status_code != 303:
            return
        revoked_at = time.time()
        await self._probe(families, revoked_at, "logout")
        _, challenge = pkce_pair()
        await self.workload.request(  # the session is over: the login page, not a code
            "authorize_after_logout",
            "GET",
            self._authorize_path(challenge, secrets.token_urlsafe(12)),
            check=_login_form,
            browser=browser,
        )

    async def _probe(self, families: list[Family], revoked_at: float, by: str) -> None:
        probes = []
        for family in families:
            for token, use in ((family.refresh, "refresh_token"), (family.access, "access_token")):
                kid = str(jose_parts(token)[0]["kid"])
                tid = token_id(token)
                self.workload.live.pop(tid, None)
                probes.append(
                    self.workload.probe_revoked(
                        token, tid, kid, revoked_at, use, user=True, by=by, client_id=self.client_id
                    )
                )
        await asyncio.gather(*probes)


def _login_form(response: httpx.Response) -> str | None:
    forms = [f for f in parse_forms(response.text) if f.method == "post" and "password" in f.inputs]
    return None if forms else "no login form"


def _code_of(answer: httpx.Response | None, verifier: str) -> tuple[str, str] | None:
    """(code, verifier) from a 303 to the redirect URI, or None."""
    if answer is None or answer.status_code != 303:
        return None
    query = parse_qs(urlsplit(answer.headers.get("location", "")).query)
    codes = query.get("code")
    return (codes[0], verifier) if codes else None
