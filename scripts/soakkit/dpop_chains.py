"""DPoP-bound refresh chains (RFC 9449): a public client that proves its key on every request.

The client ``pop`` is public (its refresh tokens bound to the key of the proof that got
them; ``--require-dpop`` is left to the tests, so that a refresh without a proof meets
the binding itself). Each chain has an Ed25519 key of its
own (joserfc makes the key and signs the proofs): a password login with a proof (the answer
must say ``token_type: DPoP``), then refreshes every 1.5-3.5 s, each attempt with a new
proof (a lost answer is retried with the same token and another proof), every access token
used at ``/users/me`` with ``Authorization: DPoP`` and a proof carrying ``ath``, and handed
to the verifiers with the key (``authsvc.verifier`` checks the binding). Once in a chain,
at a random step, one deliberate refusal, judged by the answer it must get (anything else
is ``unexpected-answer``; a refusal that spent the token breaks the chain's next step,
``chain-broken``):

- ``unproved``: the refresh token without a proof: 400;
- ``other_key``: the refresh token with a proof by another key: 400;
- ``bearer``: the bound access token as a Bearer token at ``/users/me``: 401;
- ``proof_replay``: a proof that was just accepted at ``/users/me``, sent again (through
  the proxy, usually to the other instance): 401. Proofs are remembered in Redis, which
  the faults stop: a server that cannot check must refuse, never accept.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import secrets
import time
from typing import Any

import httpx
from joserfc import jws
from joserfc.jwk import OKPKey

from soakkit.clients import ProofMaker, Workload, jose_parts, pause

__all__ = ["CLIENT_ID", "DpopChains", "proof_maker"]

CLIENT_ID = "pop"
REFUSALS = ("unproved", "other_key", "bearer", "proof_replay")


def proof_maker(key: OKPKey) -> ProofMaker:
    """Proofs by ``key``: ``htm``, ``htu``, ``iat``, a fresh ``jti``, ``ath`` with a token.

    The algorithm is RFC 9864's fully-specified ``Ed25519`` (what oauth4webapi sends).
    """
    header = {"typ": "dpop+jwt", "alg": "Ed25519", "jwk": key.as_dict(private=False)}

    def make(method: str, url: str, access_token: str | None) -> str:
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(time.time()),
        }
        if access_token is not None:
            digest = hashlib.sha256(access_token.encode("ascii")).digest()
            claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        return jws.serialize_compact(header, json.dumps(claims), key, algorithms=["Ed25519"])

    return make


class DpopChains:
    def __init__(self, workload: Workload, users: list[tuple[str, str]], seed: int) -> None:
        self.workload = workload
        self.users = users
        self.rng = random.Random(seed + 2)
        self.count = 0

    async def loop(self, concurrency: int, stop: asyncio.Event) -> None:
        async def runner(slot: int) -> None:
            await asyncio.sleep(0.4 + slot * 0.9)
            while not stop.is_set():
                await self.chain(stop)

        await asyncio.gather(*(runner(i) for i in range(concurrency)))

    async def chain(self, stop: asyncio.Event) -> None:
        self.count += 1
        chain = f"p{self.count}"
        proof = proof_maker(OKPKey.generate_key("Ed25519"))
        first = await self._login(proof, stop)
        if first is None:
            await pause(stop, 1.0)
            return
        refresh, access = first["refresh_token"], first["access_token"]
        await self.workload.use_access(access, "dpop_login", proof)
        steps = self.rng.randint(3, 8)
        refusal_at, refusal = self.rng.randrange(steps), self.rng.choice(REFUSALS)
        for step in range(steps):
            if await pause(stop, self.rng.uniform(1.5, 3.5)):
                return
            if step == refusal_at:
                await self._refuse(refusal, refresh, access, proof)
            answer = await self.workload.refresh(chain, refresh, stop, client_id=CLIENT_ID, proof=proof)
            if answer is None:
                return  # refused or given up: the ledger judges why
            body = answer[0]
            refresh, access = body["refresh_token"], body["access_token"]
            await self.workload.use_access(access, "dpop_refresh", proof)

    async def _login(self, proof: ProofMaker, stop: asyncio.Event) -> dict[str, Any] | None:
        def check(response: httpx.Response) -> str | None:
            kind = response.json().get("token_type")
            return None if kind == "DPoP" else f"token_type {kind!r}"

        workload = self.workload
        return await workload.login(stop, kind="dpop_login", client_id=CLIENT_ID, proof=proof, check=check)

    async def _refuse(self, refusal: str, refresh: str, access: str, proof: ProofMaker) -> None:
        """One request that must be refused; it must not spend or revoke anything."""
        token_url = self.workload.base_url + "/token"
        body = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": CLIENT_ID}
        if refusal == "unproved":
            await self.workload.request("dpop_unproved_refresh", "POST", "/token", expect=(400,), data=body)
        elif refusal == "other_key":
            other = proof_maker(OKPKey.generate_key("Ed25519"))
            headers = {"DPoP": other("POST", token_url, None)}
            await self.workload.request(
                "dpop_other_key_refresh", "POST", "/token", expect=(400,), data=body, headers=headers
            )
        elif refusal == "bearer":
            headers = self.workload.resource_headers(access, None)
            await self.workload.request("dpop_as_bearer", "GET", "/users/me", expect=(401,), headers=headers)
        else:
            headers = self.workload.resource_headers(access, proof)
            kid = str(jose_parts(access)[0]["kid"])  # a 401 for a key the soak revoked is no failure
            first = await self.workload.request("users_me", "GET", "/users/me", headers=headers, kid=kid)
            if first is not None and first.status_code == 200:
                await self.workload.request(
                    "dpop_proof_replay", "GET", "/users/me", expect=(401,), headers=headers
                )
