"""SyncVerifier: same rules as the async one, blocking I/O, thread-safe single-flight."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from verifier_support import AUDIENCE, ISSUER, FakeClock, JWKSStub, Minter, Signer

from authsvc.verifier import InvalidToken, SyncVerifier


def test_verifies_and_caches(
    make_sync_verifier: Callable[..., SyncVerifier],
    jwks: JWKSStub,
    mint: Minter,
    clock: FakeClock,
    ed_signer: Signer,
) -> None:
    jwks.cache_control = "max-age=100"
    verifier = make_sync_verifier()
    assert verifier.verify(mint())["sub"] == "user-7f3a"
    assert verifier.verify(mint(ed_signer), scopes=["profile"])["scope"] == "orders:read profile"
    clock.advance(99)
    verifier.verify(mint())
    assert jwks.fetches == 1
    clock.advance(1)
    verifier.verify(mint())
    assert (jwks.fetches, jwks.not_modified) == (2, 1)
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(mint(), scopes=["admin"])
    assert caught.value.code == "insufficient_scope"


def test_stale_if_error_and_cooldown(
    make_sync_verifier: Callable[..., SyncVerifier], jwks: JWKSStub, mint: Minter, clock: FakeClock
) -> None:
    verifier = make_sync_verifier(stale_if_error=100)
    verifier.verify(mint())
    for i in range(50):
        with pytest.raises(InvalidToken):
            verifier.verify(mint(header={"kid": f"unknown-{i}"}))
    assert jwks.fetches == 1
    jwks.mode = "down"
    clock.advance(300)
    verifier.verify(mint())
    clock.advance(99)
    verifier.verify(mint())
    clock.advance(1)
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(mint())
    assert caught.value.reason == "jwks_unavailable"


def test_threads_share_one_fetch(jwks: JWKSStub, mint: Minter, clock: FakeClock) -> None:
    entered = threading.Event()
    release = threading.Event()

    def slow(request: httpx.Request) -> httpx.Response:
        entered.set()
        release.wait(5)
        return jwks.respond(request)

    token = mint()
    errors: list[BaseException] = []
    with (
        httpx.Client(transport=httpx.MockTransport(slow)) as client,
        SyncVerifier(ISSUER, AUDIENCE, http=client, clock=clock) as verifier,
    ):
        barrier = threading.Barrier(20)

        def work() -> None:
            barrier.wait()
            try:
                verifier.verify(token)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(20)]
        for thread in threads:
            thread.start()
        assert entered.wait(5)
        release.set()
        for thread in threads:
            thread.join(5)
    assert not errors
    assert jwks.fetches == 1


def test_owned_client_closes(mint: Minter) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    verifier = SyncVerifier(ISSUER, AUDIENCE, jwks_url=f"http://127.0.0.1:{port}/jwks.json")
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(mint())
    assert caught.value.reason == "jwks_unavailable"
    assert verifier._http is not None
    verifier.close()
    assert verifier._http is None
    verifier.close()


def test_base_install_imports_nothing_from_the_server() -> None:
    """The verifier must import with httpx, cryptography and joserfc only (DPoP and Redis included)."""
    code = (
        "import sys\n"
        "blocked = ('fastapi', 'starlette', 'pydantic', 'pydantic_settings', 'sqlalchemy', 'uvicorn')\n"
        "for name in (*blocked, 'redis'):\n"
        "    sys.modules[name] = None\n"
        "from authsvc.verifier import InvalidToken, SyncVerifier, Verifier\n"
        "from authsvc.verifier import DpopRequest, InMemoryReplayCache, RedisReplayCache, RotatingNonces\n"
        "Verifier('https://issuer.test', 'api'); SyncVerifier('https://issuer.test', ['api'])\n"
        "Verifier('https://issuer.test', 'api', dpop_nonces=RotatingNonces(bytes(16)))\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('authsvc'))\n"
        "allowed = {'authsvc', 'authsvc.jose', 'authsvc.dpop'}\n"
        "assert all(m in allowed or m.startswith('authsvc.verifier') for m in loaded), loaded\n"
        "assert 'authsvc.verifier.fastapi' not in loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
