"""Three resource servers verifying every access token offline, each caching the JWKS.

- ``authsvc.verifier.Verifier`` (in process): caches by ``Cache-Control`` and ``Age``.
- PyJWT's ``PyJWKClient``: PyJWT caches for a fixed ``lifespan``; the subclass below sets
  that lifespan from each answer's ``max-age`` minus ``Age``, as a resource server must.
- panva ``jose`` in Node (``scripts/soak_node/verify.mjs``): ``createRemoteJWKSet``, its
  cache reloaded when the answer's ``max-age`` runs out (see that file).

Every token is verified twice by each: soon after it is issued, and again at 50-90 % of
its lifetime, by when its key has usually stopped signing: the test that a retiring key
stays published until the last token it signed expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import re
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.error import URLError

import jwt

from authsvc.verifier import DpopRequest, InvalidToken, Verifier
from soakkit.clients import ProofMaker
from soakkit.ledger import Issued, Ledger, Verification

__all__ = ["CacheHonouringJWKClient", "Verifiers"]

NODE_DIR = Path(__file__).resolve().parents[1] / "soak_node"
ALGORITHMS = ["EdDSA", "RS256", "ES256", "PS256"]
#: Where a DPoP client sends its tokens to the resource server (as the proofs' ``htu``).
RESOURCE_URL = "https://api.soak.example/orders"


class CacheHonouringJWKClient(jwt.PyJWKClient):
    """PyJWKClient whose cache lifetime is each JWKS answer's ``max-age`` minus ``Age``."""

    def fetch_data(self) -> Any:
        request = urllib.request.Request(url=self.uri, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # loopback
                data = json.load(response)
                cache_control = response.headers.get("Cache-Control", "")
                age = int(response.headers.get("Age") or 0)
        except (URLError, TimeoutError, OSError, ValueError) as exc:
            raise jwt.PyJWKClientConnectionError(f"jwks-unreachable: {exc}") from exc
        match = re.search(r"max-age=(\d+)", cache_control)
        lifespan = max(1, (int(match.group(1)) if match else 300) - age)
        if self.jwk_set_cache is not None:
            self.jwk_set_cache.lifespan = lifespan
            self.jwk_set_cache.put(data)
        return data


class Verifiers:
    def __init__(
        self, issuer: str, audience: str, leeway: int, max_age: int, ledger: Ledger, seed: int
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.max_age = max_age
        self.ledger = ledger
        self.rng = random.Random(seed)
        self.authsvc = Verifier(issuer, audience, leeway=leeway)
        self.pyjwt = CacheHonouringJWKClient(issuer + "/.well-known/jwks.json", cache_keys=False, timeout=5)
        self.node: asyncio.subprocess.Process | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self.counts: dict[str, int] = {"authsvc.verifier": 0, "pyjwt": 0, "jose": 0}

    async def start(self) -> None:
        self.node = await asyncio.create_subprocess_exec(
            "node",
            str(NODE_DIR / "verify.mjs"),
            self.issuer,
            self.audience,
            str(self.leeway),
            str(self.max_age),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=NODE_DIR,
        )
        self._reader = asyncio.create_task(self._read_node())

    async def _read_node(self) -> None:
        assert self.node is not None
        assert self.node.stdout is not None
        while line := await self.node.stdout.readline():
            answer = json.loads(line)
            future = self._pending.pop(int(answer["id"]), None)
            if future is not None and not future.done():
                future.set_result(answer)

    def submit(self, kind: str, token: str, issued: Issued, proof: ProofMaker | None = None) -> None:
        """Schedule the two verifications of a newly issued access token.

        ``proof``: the DPoP client's, for a token bound to its key: ``authsvc.verifier``
        then gets a fresh proof with the token, as a resource server would (PyJWT and jose
        know nothing of DPoP and check the JWT alone).
        """
        lifetime = max(1.0, issued.exp - issued.t)
        for delay in (self.rng.uniform(0.0, 1.0), lifetime * self.rng.uniform(0.5, 0.9)):
            task = asyncio.create_task(self._later(delay, token, issued, proof))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _later(self, delay: float, token: str, issued: Issued, proof: ProofMaker | None) -> None:
        await asyncio.sleep(delay)
        await asyncio.gather(
            self._verify_authsvc(token, issued, proof),
            self._verify_pyjwt(token, issued),
            self._verify_jose(token, issued),
        )

    def _record(self, name: str, issued: Issued, ok: bool, reason: str) -> None:
        self.counts[name] += 1
        self.ledger.verified(Verification(issued.token_id, name, time.time(), ok, reason))

    async def _verify_authsvc(self, token: str, issued: Issued, proof: ProofMaker | None) -> None:
        dpop = None if proof is None else DpopRequest(proof("GET", RESOURCE_URL, token), "GET", RESOURCE_URL)
        try:
            await self.authsvc.verify(token, dpop=dpop)
        except InvalidToken as exc:
            self._record("authsvc.verifier", issued, False, f"{exc.reason}")
        else:
            self._record("authsvc.verifier", issued, True, "")

    def _pyjwt_sync(self, token: str) -> None:
        header = jwt.get_unverified_header(token)
        if str(header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
            raise jwt.InvalidTokenError("typ")
        key = self.pyjwt.get_signing_key_from_jwt(token)
        jwt.decode(
            token, key, algorithms=ALGORITHMS, audience=self.audience, issuer=self.issuer, leeway=self.leeway
        )

    async def _verify_pyjwt(self, token: str, issued: Issued) -> None:
        try:
            await asyncio.to_thread(self._pyjwt_sync, token)
        except jwt.PyJWKClientConnectionError as exc:
            self._record("pyjwt", issued, False, str(exc)[:160])
        except (jwt.PyJWTError, jwt.PyJWKClientError) as exc:
            self._record("pyjwt", issued, False, f"{type(exc).__name__}: {exc}"[:160])
        else:
            self._record("pyjwt", issued, True, "")

    async def _verify_jose(self, token: str, issued: Issued) -> None:
        assert self.node is not None
        assert self.node.stdin is not None
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        self.node.stdin.write((json.dumps({"id": ident, "token": token}) + "\n").encode())
        await self.node.stdin.drain()
        try:
            answer = await asyncio.wait_for(future, timeout=30)
        except TimeoutError:
            self._record("jose", issued, False, "jose: no answer in 30 s")
            return
        self._record("jose", issued, bool(answer["ok"]), "" if answer["ok"] else str(answer["code"]))

    async def drain(self, seconds: float) -> None:
        """Wait for scheduled verifications (those due after ``seconds`` are dropped)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*list(self._tasks), return_exceptions=True), seconds)
        for task in list(self._tasks):
            task.cancel()

    async def close(self) -> None:
        await self.authsvc.aclose() if hasattr(self.authsvc, "aclose") else None
        if self.node is not None:
            if self.node.stdin is not None:
                self.node.stdin.close()
            with contextlib.suppress(TimeoutError, ProcessLookupError):
                await asyncio.wait_for(self.node.wait(), 5)
            if self.node.returncode is None:
                self.node.kill()
        if self._reader is not None:
            self._reader.cancel()
