"""Against a real JWKS server on 127.0.0.1 (http.server in a thread, port 0).

The verifiers build their own httpx clients here, so this also covers the
default transport path: connection errors, 304s and the owned-client lifecycle.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from verifier_dpop_support import ProofKey
from verifier_support import AUDIENCE, ISSUER, FakeClock, Minter, Signer

from authsvc.verifier import InvalidToken, SyncVerifier, Verifier

JWKS_PATH = "/.well-known/jwks.json"


class LiveJWKS:
    """A controllable JWKS endpoint that counts fetches; ``stop()`` takes it down."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = keys
        self.cache_control = "public, max-age=60"
        self.fetches = 0
        self.not_modified = 0
        self._lock = threading.Lock()
        live = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != JWKS_PATH:
                    self.send_error(404)
                    return
                body = json.dumps({"keys": live.keys}).encode()
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                with live._lock:
                    live.fetches += 1
                    if self.headers.get("If-None-Match") == etag:
                        live.not_modified += 1
                        body = b""
                self.send_response(304 if not body else 200)
                self.send_header("Cache-Control", live.cache_control)
                self.send_header("ETag", etag)
                if body:
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self._running = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{JWKS_PATH}"

    def stop(self) -> None:
        if self._running:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._running = False


@pytest.fixture
def live_jwks(rsa_signer: Signer, ed_signer: Signer) -> Iterator[LiveJWKS]:
    server = LiveJWKS([rsa_signer.jwk, ed_signer.jwk])
    yield server
    server.stop()


async def test_flood_of_unknown_kids_is_bounded_and_cache_survives_outage(
    live_jwks: LiveJWKS, clock: FakeClock, mint: Minter, ed_signer: Signer, foreign_ed: Signer
) -> None:
    async with Verifier(
        ISSUER, AUDIENCE, jwks_url=live_jwks.url, clock=clock, stale_if_error=600
    ) as verifier:
        flood = [mint(foreign_ed, header={"kid": secrets.token_urlsafe(32)}) for _ in range(1000)]

        # 1,000 concurrent tokens with random kids on a cold cache: one fetch.
        results = await asyncio.gather(*(verifier.verify(t) for t in flood), return_exceptions=True)
        assert all(isinstance(r, InvalidToken) and r.reason == "no_matching_key" for r in results)
        assert live_jwks.fetches == 1

        # Once the cooldown is over, the next flood may fetch once more; no more than that.
        clock.advance(30)
        results = await asyncio.gather(*(verifier.verify(t) for t in flood), return_exceptions=True)
        assert all(isinstance(r, InvalidToken) for r in results)
        for token in flood[:400]:
            clock.advance(0.0625)  # 25 s of sequential attacker traffic (an exact binary step)
            with pytest.raises(InvalidToken):
                await verifier.verify(token)
        assert live_jwks.fetches == 2

        # Genuine tokens verify from the cache without fetching.
        await verifier.verify(mint(ed_signer))
        assert live_jwks.fetches == 2

        # max-age=60 from the last fetch (at +30 s): revalidated (304) once it runs out, not before.
        fetches = live_jwks.fetches
        clock.advance(60 - 25 - 0.5)
        await verifier.verify(mint(ed_signer))
        assert live_jwks.fetches == fetches
        clock.advance(0.5)
        await verifier.verify(mint(ed_signer))
        assert live_jwks.fetches == fetches + 1
        assert live_jwks.not_modified >= 1

        # The issuer goes away: cached keys keep verifying until stale_if_error runs out.
        live_jwks.stop()
        clock.advance(60)
        await verifier.verify(mint(ed_signer))
        clock.advance(500)
        await verifier.verify(mint(ed_signer))
        clock.advance(100)
        with pytest.raises(InvalidToken) as caught:
            await verifier.verify(mint(ed_signer))
        assert caught.value.reason == "jwks_unavailable"
        assert live_jwks.fetches == fetches + 1


def test_sync_verifier_against_live_server(
    live_jwks: LiveJWKS, clock: FakeClock, mint: Minter, rsa_signer: Signer
) -> None:
    live_jwks.cache_control = "max-age=10"
    with SyncVerifier(ISSUER, AUDIENCE, jwks_url=live_jwks.url, clock=clock) as verifier:
        assert verifier.verify(mint(rsa_signer), scopes=["orders:read"])["client_id"] == "cli"
        clock.advance(10)
        verifier.verify(mint(rsa_signer))
        assert (live_jwks.fetches, live_jwks.not_modified) == (2, 1)
        live_jwks.stop()
        clock.advance(10)
        verifier.verify(mint(rsa_signer))
        assert live_jwks.fetches == 2


async def test_jwks_404_is_unavailable(live_jwks: LiveJWKS, clock: FakeClock, mint: Minter) -> None:
    async with Verifier(ISSUER, AUDIENCE, jwks_url=live_jwks.url + "x", clock=clock) as verifier:
        with pytest.raises(InvalidToken) as caught:
            await verifier.verify(mint())
        assert caught.value.reason == "jwks_unavailable"


def _load_example() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "scripts" / "example_resource_server.py"
    spec = importlib.util.spec_from_file_location("example_resource_server", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_example_resource_server(
    live_jwks: LiveJWKS, ed_signer: Signer, dpop_keys: dict[str, ProofKey]
) -> None:
    mint = Minter(ed_signer, FakeClock(time.time()))  # the example runs on the real clock
    issuer = live_jwks.url.removesuffix(JWKS_PATH)
    app = _load_example().create_app(issuer, "authsvc")
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        token = mint(ed_signer, iss=issuer, aud="authsvc", scope="profile")
        whoami = await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
        assert whoami.status_code == 200, whoami.text
        assert whoami.json()["sub"] == "user-7f3a"
        orders = await client.get("/orders", headers={"Authorization": f"Bearer {token}"})
        assert orders.status_code == 403
        assert orders.json()["error"] == "insufficient_scope"
        token = mint(ed_signer, iss=issuer, aud="authsvc", scope="orders:read")
        orders = await client.get("/orders", headers={"Authorization": f"Bearer {token}"})
        assert orders.status_code == 200
        assert (await client.get("/orders")).status_code == 401
        # DPoP: ordering needs a bound token and a proof by its key
        placed = await client.post(
            "/orders",
            headers={"Authorization": f"Bearer {mint(iss=issuer, aud='authsvc', scope='orders:write')}"},
        )
        assert placed.status_code == 401
        assert placed.headers["www-authenticate"].startswith('DPoP realm="authsvc", error="invalid_token"')
        key = dpop_keys["ES256"]
        bound = mint(
            ed_signer, iss=issuer, aud="authsvc", scope="orders:read orders:write", cnf={"jkt": key.jkt}
        )
        proof = key.proof(time.time(), token=bound, method="POST", url="http://t/orders")
        placed = await client.post("/orders", headers={"Authorization": f"DPoP {bound}", "DPoP": proof})
        assert placed.status_code == 200, placed.text
        assert (await client.get("/orders", headers={"Authorization": f"Bearer {bound}"})).status_code == 401
        proof = key.proof(time.time(), token=bound, url="http://t/orders")
        orders = await client.get("/orders", headers={"Authorization": f"DPoP {bound}", "DPoP": proof})
        assert orders.status_code == 200
