"""authsvc.verifier against a live authsvc through key rotations: zero failures.

A real server with periods of seconds issues tokens continuously while
scripts/rotate_keys.py runs from a loop (with one --force). Every token must
verify with the SDK from the moment it is issued until its exp, with the SDK
honouring the JWKS max-age and never needing its unknown-kid re-fetch.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import jwt
import pytest

from authsvc.verifier import InvalidToken, Verifier
from tests.support import start_server, stop_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _rotate_forever(env: dict[str, str], stop: threading.Event, runs: list[str]) -> None:
    forced = False
    while not stop.is_set():
        args = [sys.executable, str(ROOT / "scripts" / "rotate_keys.py")]
        if not forced and len(runs) >= 3:
            args.append("--force")
            forced = True
        result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
        runs.append(f"{result.returncode}:{result.stdout.strip()}{result.stderr.strip()}")
        stop.wait(0.3)


async def test_sdk_verifies_every_token_through_rotations(tmp_path: Path) -> None:
    server = start_server(
        tmp_path,
        signing_alg="EdDSA",
        key_rotation_period="3",
        key_prepublish="1",
        jwks_max_age="1",
        access_token_ttl="4",
        refresh_token_ttl="60",
        clock_skew="0",
    )
    stop = threading.Event()
    runs: list[str] = []
    rotator = threading.Thread(target=_rotate_forever, args=(server.env, stop, runs), daemon=True)
    fetches = 0

    async def count(request: httpx.Request) -> None:
        nonlocal fetches
        fetches += 1

    try:
        added = server.cli("users", "add", "alice", "--password-stdin", input="pw-alice\n")
        assert added.returncode == 0, added.stderr
        rotator.start()
        http = httpx.AsyncClient(event_hooks={"request": [count]})
        verifier = Verifier(server.url, "authsvc", leeway=0, http=http)
        live: list[tuple[str, float]] = []
        kids: set[str] = set()
        failures: list[str] = []
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            login = await client.post(
                "/token", data={"grant_type": "password", "username": "alice", "password": "pw-alice"}
            )
            refresh = login.json()["refresh_token"]
            deadline = time.monotonic() + 14
            while time.monotonic() < deadline:
                response = await client.post(
                    "/token", data={"grant_type": "refresh_token", "refresh_token": refresh}
                )
                assert response.status_code == 200, response.text
                body = response.json()
                refresh = body["refresh_token"]
                exp = jwt.decode(body["access_token"], options={"verify_signature": False})["exp"]
                live.append((body["access_token"], float(exp)))
                now = time.time()
                live = [(t, exp) for t, exp in live if exp - 0.3 > now]
                for token, _exp in live:
                    try:
                        claims = await verifier.verify(token)
                    except InvalidToken as exc:
                        failures.append(exc.reason)
                    else:
                        assert claims["iss"] == server.url
                kids.add(jwt.get_unverified_header(body["access_token"])["kid"])
                await asyncio.sleep(0.2)
        await verifier.aclose()
        await http.aclose()
    finally:
        stop.set()
        rotator.join(timeout=90)
        stop_server(server)
    assert failures == [], failures
    assert len(kids) >= 3, (kids, runs)
    assert any("created" in run for run in runs)
    # max-age honoured: about one fetch per second of run time, never a storm
    assert fetches <= 40, fetches
