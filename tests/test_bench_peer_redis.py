"""The bench's peer on its Redis adapter (scripts/bench_peer/redis_adapter.js, BENCH_ADAPTER=redis): refresh
tokens rotate and a spent one is refused (and its grant revoked), as in memory; every key it writes is under
its prefix, and it deletes those keys, and no others, at its start and at its exit. Needs node, `npm ci` in
scripts/bench_peer and AUTHSVC_TEST_REDIS_URL (its server, the bench's database 13); skipped without.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from benchkit.config import PEER_DIR
from benchkit.cores import Cores
from benchkit.servers import Procs, basic_auth, start_peer

REDIS = os.environ.get("AUTHSVC_TEST_REDIS_URL")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("node") is None or not (PEER_DIR / "node_modules" / "ioredis").is_dir(),
        reason="the bench peer needs node and `npm ci` in scripts/bench_peer",
    ),
    pytest.mark.skipif(not REDIS, reason="AUTHSVC_TEST_REDIS_URL is not set: Redis tests skipped"),
]


@pytest.fixture
def redis_url() -> str:
    assert REDIS
    return urlunsplit(urlsplit(REDIS)._replace(path="/13"))


def _keys(client: Any, pattern: str) -> set[bytes]:
    return set(client.scan_iter(match=pattern, count=1000))


def test_peer_on_redis_rotates_refuses_reuse_and_clears_only_its_prefix(
    tmp_path: Path, redis_url: str
) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    run = secrets.token_hex(4)
    prefix = f"authsvc-bench-peer-test:{run}:"
    stale, other = f"{prefix}RefreshToken:left-over", f"authsvc-bench-peer-test-other:{run}"
    client.set(stale, "from an earlier run")
    client.set(other, "not the peer's", ex=120)
    procs = Procs()
    secret = secrets.token_urlsafe(32)
    tokens_file = tmp_path / "tokens.txt"
    try:
        proc = start_peer(
            procs,
            Cores(),
            "EdDSA",
            tmp_path,
            secret=secret,
            pool=2,
            tokens_file=tokens_file,
            redis_url=redis_url,
            redis_prefix=prefix,
        )
        assert client.get(stale) is None, "the peer did not clear its prefix at start"
        stored = _keys(client, f"{prefix}*")
        assert any(key.startswith(f"{prefix}RefreshToken:".encode()) for key in stored), stored
        rot = [
            line.split(" ", 1)[1]
            for line in tokens_file.read_text().splitlines()
            if line.startswith("bench-rot ")
        ]
        headers = {
            "Authorization": basic_auth("bench-rot", secret),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        with httpx.Client(base_url=proc.url, timeout=10) as http:
            token = rot[0]
            for _ in range(3):  # a chain: each answer's refresh token is the next one spent
                answer = http.post(
                    "/token", content=f"grant_type=refresh_token&refresh_token={token}", headers=headers
                )
                assert answer.status_code == 200, answer.text
                assert answer.json()["refresh_token"] != token
                token = answer.json()["refresh_token"]
            spent = http.post(
                "/token", content=f"grant_type=refresh_token&refresh_token={rot[0]}", headers=headers
            )
            assert spent.status_code == 400 and spent.json()["error"] == "invalid_grant"
            # Reuse revoked the grant: the live token of that family is gone too.
            after = http.post(
                "/token", content=f"grant_type=refresh_token&refresh_token={token}", headers=headers
            )
            assert after.status_code == 400 and after.json()["error"] == "invalid_grant"
            other_family = http.post(
                "/token", content=f"grant_type=refresh_token&refresh_token={rot[1]}", headers=headers
            )
            assert other_family.status_code == 200, other_family.text
        procs.stop(proc)
        deadline = time.monotonic() + 10
        while _keys(client, f"{prefix}*") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _keys(client, f"{prefix}*"), "the peer left keys under its prefix at exit"
        assert client.get(other) == b"not the peer's"
    finally:
        procs.stop_all()
        client.delete(stale, other)
        for key in _keys(client, f"{prefix}*"):
            client.delete(key)
        client.close()
