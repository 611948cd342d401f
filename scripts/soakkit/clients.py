"""The clients: a steady, modest load through the proxy, every answer into the ledger.

- Refresh chains (``chains`` at once): a password login, then a refresh every 1.5-3.5 s,
  each new access token used at ``/users/me``, sometimes introspected, and handed to the
  verifiers. A refresh that gets no answer or a 5xx is retried with the same token (a
  lost response, which the grace absorbs). A chain ends in one of five ways: plainly;
  after deliberate replays inside the grace (must get the same body back); with a
  replay after the grace (must be refused, and then its successor too: the session is
  revoked); by revoking its refresh token; by revoking its access token. A revocation is
  followed by probes: introspection at once, ``/users/me`` or ``/token`` again.
- ``client_credentials`` every ``client_credentials_every`` seconds, half introspected.

Tokens are recorded by digest; the raw tokens of live access tokens are kept in memory
only so that the key-revocation fault can probe them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from soakkit.ledger import Answer, Issued, Ledger, Probe, RefreshAttempt

__all__ = ["ProofMaker", "Workload", "jose_parts", "pause", "token_id"]

#: A DPoP client's proof for (method, URL, the access token it comes with or None): a new
#: proof each call (RFC 9449: a proof is single use, a retry needs another).
ProofMaker = Callable[[str, str, str | None], str]

CHAIN_ENDINGS = ("plain", "plain", "grace", "reuse", "revoke_refresh", "revoke_access")


def token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def jose_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, unverified (the soak reads what it was given)."""
    head, body = token.split(".")[:2]

    def load(part: str) -> dict[str, Any]:
        return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))

    return load(head), load(body)


@dataclass
class LiveToken:
    token: str
    kid: str
    exp: float
    user: bool
    proof: ProofMaker | None = None  # a DPoP-bound token: used with the DPoP scheme


class Workload:
    def __init__(
        self,
        base_url: str,
        ledger: Ledger,
        users: list[tuple[str, str]],
        service: tuple[str, str],
        on_access_token: Callable[[str, str, Issued, ProofMaker | None], None],
        *,
        grace: float,
        skew_margin: float,
        seed: int,
    ) -> None:
        self.base_url = base_url
        self.ledger = ledger
        self.users = users
        self.service = service
        self.on_access_token = on_access_token
        self.grace = grace
        self.skew_margin = skew_margin
        self.rng = random.Random(seed)
        self.inflight = 0
        self.live: dict[str, LiveToken] = {}
        self.chain_count = 0
        self.http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(15.0, connect=5.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )

    async def close(self) -> None:
        await self.http.aclose()

    # --- one request ----------------------------------------------------------------------
    async def request(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        expect: Iterable[int] = (200,),
        kid: str | None = None,
        check: Callable[[httpx.Response], str | None] | None = None,
        browser: httpx.AsyncClient | None = None,
        **kwargs: Any,
    ) -> httpx.Response | None:
        """Send one request and record its answer; None when there was no answer.

        ``browser``: a client of its own (its own cookies) in place of the shared one.
        """
        t0 = time.time()
        self.inflight += 1
        try:
            response = await (browser or self.http).request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self.ledger.answer(Answer(kind, t0, time.time(), None, detail=type(exc).__name__))
            return None
        finally:
            self.inflight -= 1
        t1 = time.time()
        status = response.status_code
        problem = None if status in expect else f"not {'/'.join(map(str, expect))}"
        if problem is None and check is not None and status < 400:  # a body or a redirect to judge
            problem = check(response)
        detail = problem or ""
        if status >= 400 and (status >= 500 or problem):  # an error body; a 2xx may carry tokens
            detail = f"{detail} {response.text[:120]}".strip()
        self.ledger.answer(Answer(kind, t0, t1, status, expected=problem is None, kid=kid, detail=detail))
        return response

    # --- tokens ---------------------------------------------------------------------------
    def _issued(self, token: str, kind: str, proof: ProofMaker | None) -> Issued:
        header, claims = jose_parts(token)
        issued = Issued(token_id(token), kind, time.time(), float(claims["exp"]), str(header["kid"]))
        self.ledger.issue(issued)
        user = kind != "client_credentials"
        self.live[issued.token_id] = LiveToken(token, issued.kid, issued.exp, user, proof)
        self.on_access_token(kind, token, issued, proof)
        now = time.time()
        for tid in [t for t, live in self.live.items() if live.exp < now]:
            del self.live[tid]
        return issued

    def _basic(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(*self.service)

    def resource_headers(self, token: str, proof: ProofMaker | None) -> dict[str, str]:
        """The headers of a GET of ``/users/me``: Bearer, or DPoP with a proof."""
        if proof is None:
            return {"Authorization": f"Bearer {token}"}
        return {"Authorization": f"DPoP {token}", "DPoP": proof("GET", self.base_url + "/users/me", token)}

    async def use_access(self, token: str, kind: str, proof: ProofMaker | None = None) -> None:
        issued = self._issued(token, kind, proof)
        headers = self.resource_headers(token, proof)
        if kind != "client_credentials":
            await self.request("users_me", "GET", "/users/me", headers=headers, kid=issued.kid)
        if self.rng.random() < 0.4:
            await self.introspect(token, issued.kid, active=True)

    async def introspect(
        self, token: str, kid: str | None, *, active: bool, kind: str = "introspect"
    ) -> bool | None:
        def check(response: httpx.Response) -> str | None:
            got = response.json().get("active")
            return None if got is active else f"active={got}"

        response = await self.request(
            kind, "POST", "/introspect", data={"token": token}, auth=self._basic(), kid=kid, check=check
        )
        if response is None or response.status_code != 200:
            return None
        return bool(response.json().get("active"))

    # --- client credentials ---------------------------------------------------------------
    async def client_credentials_loop(self, every: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            response = await self.request(
                "client_credentials",
                "POST",
                "/token",
                data={"grant_type": "client_credentials"},
                auth=self._basic(),
            )
            if response is not None and response.status_code == 200:
                await self.use_access(response.json()["access_token"], "client_credentials")
            await pause(stop, every * self.rng.uniform(0.7, 1.3))

    # --- refresh chains -------------------------------------------------------------------
    async def chains_loop(self, concurrency: int, stop: asyncio.Event) -> None:
        async def runner(slot: int) -> None:
            await asyncio.sleep(slot * 0.7)  # a staggered start
            while not stop.is_set():
                await self.chain(stop)

        await asyncio.gather(*(runner(i) for i in range(concurrency)))

    async def login(
        self,
        stop: asyncio.Event,
        *,
        kind: str = "login",
        client_id: str = "cli",
        proof: ProofMaker | None = None,
        check: Callable[[httpx.Response], str | None] | None = None,
    ) -> dict[str, Any] | None:
        """A password login, retried while the answer is lost or a 5xx (``proof``: with DPoP)."""
        name, password = self.rng.choice(self.users)
        body = {"grant_type": "password", "username": name, "password": password, "client_id": client_id}
        for _ in range(30):
            headers = {} if proof is None else {"DPoP": proof("POST", self.base_url + "/token", None)}
            response = await self.request(kind, "POST", "/token", check=check, headers=headers, data=body)
            if response is not None and response.status_code == 200:
                return dict(response.json())
            if response is not None and response.status_code < 500:
                return None  # refused: recorded as unexpected
            if await pause(stop, 0.5):
                return None
        return None

    async def chain(self, stop: asyncio.Event) -> None:
        self.chain_count += 1
        chain = f"c{self.chain_count}"
        first = await self.login(stop)
        if first is None:
            await pause(stop, 1.0)
            return
        ending = self.rng.choice(CHAIN_ENDINGS)
        refresh, access = first["refresh_token"], first["access_token"]
        await self.use_access(access, "login")
        previous: str | None = None
        spent_at = 0.0
        for _ in range(self.rng.randint(3, 8)):
            if await pause(stop, self.rng.uniform(1.5, 3.5)):
                return
            answer = await self.refresh(chain, refresh, stop)
            if answer is None:
                return  # refused or given up: the ledger judges why
            body = answer[0]
            previous, spent_at = refresh, time.time()
            if ending == "grace" and self.rng.random() < 0.6:
                await self.refresh(chain, previous, stop, deliberate="grace")
            refresh, access = body["refresh_token"], body["access_token"]
            await self.use_access(access, "refresh")
        if ending == "reuse" and previous is not None:
            # After the grace, plus the largest clock difference between the instances.
            wait = spent_at + self.grace + self.skew_margin + 1.0 - time.time()
            if await pause(stop, max(0.0, wait)):
                return
            await self.refresh(chain, previous, stop, deliberate="late")
            await self.refresh(chain, refresh, stop, deliberate="after_reuse")
        elif ending == "revoke_refresh":
            await self.revoke(refresh, "refresh_token", user=True)
        elif ending == "revoke_access":
            await self.revoke(access, "access_token", user=True)

    async def refresh(
        self,
        chain: str,
        token: str,
        stop: asyncio.Event,
        *,
        deliberate: str = "",
        client_id: str = "cli",
        proof: ProofMaker | None = None,
    ) -> tuple[dict[str, Any], str] | None:
        """Present ``token``; a normal step retries a lost answer with the same token.

        ``proof``: a DPoP client's, for a new proof with every attempt.
        """
        header, _ = jose_parts(token)
        kid, tid = str(header["kid"]), token_id(token)
        started = time.time()
        while True:
            t0 = time.time()
            response = await self.request(
                "refresh",
                "POST",
                "/token",
                expect=(200, 400),
                kid=kid,
                data={"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id},
                headers={} if proof is None else {"DPoP": proof("POST", self.base_url + "/token", None)},
            )
            t1 = time.time()
            status = None if response is None else response.status_code
            digest = hashlib.sha256(response.content).hexdigest()[:16] if status == 200 and response else None
            self.ledger.refresh(RefreshAttempt(chain, tid, kid, t0, t1, status, digest, deliberate))
            if response is not None and status == 200:
                return dict(response.json()), digest or ""
            if deliberate or (status is not None and status < 500):
                return None
            if time.time() - started > 60 or await pause(stop, 0.3):
                return None

    async def revoke(self, token: str, use: str, *, user: bool) -> None:
        header, _ = jose_parts(token)
        kid, tid = str(header["kid"]), token_id(token)
        response = await self.request(
            "revoke",
            "POST",
            "/revoke",
            data={"token": token, "token_type_hint": use, "client_id": "cli"},
            kid=kid,
        )
        if response is None or response.status_code != 200:
            return
        revoked_at = time.time()
        self.live.pop(tid, None)
        await self.probe_revoked(token, tid, kid, revoked_at, use, user=user)

    async def probe_revoked(
        self,
        token: str,
        tid: str,
        kid: str,
        revoked_at: float,
        use: str,
        *,
        user: bool,
        by: str = "token",
        client_id: str = "cli",
        proof: ProofMaker | None = None,
    ) -> None:
        """Introspection at once; then the token's own route until 1.5 s after the revocation.

        Their answers are judged by the ledger's probe rule (200 is fine within the
        route's deadline), not as answers the client did not expect.
        """
        t0 = time.time()
        # A key's revocation reaches every server within 1 s (its key-store poll), so the
        # answer names the kid: the ledger then judges it by the probe rule alone, as it
        # does the route probes below. A token revoked at /revoke must be inactive at once.
        active = await self.introspect(
            token, kid if by == "key" else None, active=False, kind="revoked_introspect"
        )
        self.ledger.probe(Probe(tid, revoked_at, "introspect", t0, active, by))
        for delay in (0.0, 0.5, 1.05, 1.5):
            wait = revoked_at + delay - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            t0 = time.time()
            if use == "refresh_token":
                response = await self.request(
                    "revoked_refresh",
                    "POST",
                    "/token",
                    expect=(200, 400),
                    kid=kid,
                    data={"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id},
                    headers={} if proof is None else {"DPoP": proof("POST", self.base_url + "/token", None)},
                )
                route = "token"
            elif user:
                response = await self.request(
                    "revoked_users_me",
                    "GET",
                    "/users/me",
                    expect=(200, 401),
                    kid=kid,
                    headers=self.resource_headers(token, proof),
                )
                route = "users_me"
            else:
                return
            accepted = (
                None if response is None or response.status_code >= 500 else response.status_code == 200
            )
            self.ledger.probe(Probe(tid, revoked_at, route, t0, accepted, by))


async def pause(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep, or return True at once when the run is stopping."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
