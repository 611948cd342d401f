"""scripts/bench.py --smoke runs every code path of the benchmark and writes its results.

No timing is asserted: only that the run finishes, the JSON holds every row the
full run reports, and the load runs got answers rather than errors. The peer
(node-oidc-provider) runs when node and ``npm ci`` in scripts/bench_peer are
there (CI installs it): in memory, and on its Redis adapter when Redis answers
(on AUTHSVC_TEST_REDIS_URL's server when set, in the bench's own database 13;
its rows say why they are skipped otherwise). authsvc's refresh row on
PostgreSQL runs on a fresh database when AUTHSVC_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import fresh_postgres_database

ROOT = Path(__file__).resolve().parent.parent
PEER_INSTALLED = (
    shutil.which("node") is not None
    and (ROOT / "scripts" / "bench_peer" / "node_modules" / "oidc-provider").is_dir()
)
PEER = (
    "peer.jwks",
    "peer.client_credentials",
    "peer.refresh",
    "peer.refresh_rotating",
    "peer.authorization_code",
)
PEER_REDIS = ("peer_redis.client_credentials", "peer_redis.refresh", "peer_redis.refresh_rotating")

PER_ALG = (
    "inproc.raw_sign",
    "inproc.sign",
    "inproc.raw_verify",
    "inproc.verify",  # first-seen tokens: a pool cycled through a cache half its size
    "inproc.pyjwt_decode",  # PyJWT on the same tokens
    "inproc.verify_repeat",  # one token seen before: a cache hit
    "inproc.dpop_check",  # authsvc.dpop.check_proof on a proof of the row's alg
    "ceiling.pyjwt_me",
    "jwks",
    "jwks_304",
    "client_credentials",
    "client_credentials.dpop",  # each DPoP row: a fresh proof per request, signed before the run
    "users_me",
    "users_me.dpop",
    "refresh",
    "refresh.dpop",
    "password",
    "authorization_code",  # browser sign-in: codes minted by SSO /authorize, redeemed once each
    "signin",  # password hashes per sign-in, from the server's CPU time
)
SHARED = (
    "argon2.hash",
    "generator.get",
    "generator.post",
    "ceiling.get_bytes",
    "ceiling.post_raw",
    "ceiling.post_form",  # present even when python-multipart is missing (marked skipped)
    "eventloop.jwks_alone",
    "eventloop.jwks_with_logins",
    "growth.refresh_small",
    "growth.refresh_big",
    "memory.after_small",
    "memory.after_big",
)
EXPECTED = {*SHARED, *(f"{alg}.{name}" for alg in ("RS256", "EdDSA") for name in PER_ALG)}


def _redis_url() -> str | None:
    """The bench's Redis for its peer: AUTHSVC_TEST_REDIS_URL's server, database 13 (the tests use 0)."""
    from urllib.parse import urlsplit, urlunsplit

    url = os.environ.get("AUTHSVC_TEST_REDIS_URL")
    return urlunsplit(urlsplit(url)._replace(path="/13")) if url else None


@pytest.mark.slow
def test_bench_smoke_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "results"
    cmd = [sys.executable, str(ROOT / "scripts" / "bench.py"), "--smoke", "--out", str(out)]
    redis_url = _redis_url()
    if redis_url:
        cmd += ["--redis-url", redis_url]
    drop = None
    if os.environ.get("AUTHSVC_TEST_POSTGRES_URL"):
        pg_url, drop = fresh_postgres_database(upgrade_schema=False)  # bench.py upgrades it
        cmd += ["--postgres-url", pg_url]
    try:
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False)
    finally:
        if drop is not None:
            drop()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    data = json.loads((out / "bench.json").read_text())
    rows = {row["id"]: row for row in data["rows"]}
    expected = set(EXPECTED)
    algs = ("RS256", "EdDSA")
    expected |= {f"{alg}.rounds.refresh" for alg in algs}  # the interleaved refresh rows
    if drop is not None:
        expected |= {f"{alg}.pg.refresh" for alg in algs} | {f"{alg}.rounds.pg.refresh" for alg in algs}
    else:
        assert not any(".pg." in row_id for row_id in rows)
        assert data["meta"]["postgres"].startswith("not measured")
    if PEER_INSTALLED:
        assert data["meta"]["peer"] == "measured"
        expected |= {f"{alg}.{name}" for alg in algs for name in PEER}
        expected |= {f"{alg}.rounds.peer.refresh_rotating" for alg in algs}
        if data["meta"]["peer_redis"].startswith("measured"):
            expected |= {f"{alg}.{name}" for alg in algs for name in PEER_REDIS}
            expected |= {f"{alg}.rounds.peer_redis.refresh_rotating" for alg in algs}
        else:
            assert not redis_url, f"Redis is set ({redis_url}) but the peer on it was not measured"
            for alg in algs:
                for name in PEER_REDIS:
                    row = rows[f"{alg}.{name}"]
                    assert row["rps"] is None and row["note"].startswith("skipped"), row
    else:
        assert "skipped" in data["meta"]["peer"]
        assert not any(row_id.split(".")[1:2] == ["peer"] for row_id in rows)
    assert not expected - set(rows), sorted(expected - set(rows))

    for row_id in expected - {"ceiling.post_form"}:
        row = rows[row_id]
        assert row["requests"] > 0, row_id
        assert row["rps"] and row["rps"] > 0, row_id
        assert row["errors"] == 0, (row_id, row)
    for row_id in ("memory.after_small", "memory.after_big"):
        assert rows[row_id]["rss_mib"] > 0

    for alg in ("RS256", "EdDSA"):
        assert "codes minted before the run" in rows[f"{alg}.authorization_code"]["note"]
        assert data["meta"]["sign_in_cpu"][alg]["server_cpu_ms_per_sign_in"] > 0
    assert data["meta"]["sign_in_hashes"]["hashes_per_sign_in"] is not None

    names = [target["name"] for target in data["targets"]]
    assert any(name.startswith("RS256 refresh ≥ 0.8") for name in names)
    assert any(name.startswith("sign-in: password hashes per sign-in") for name in names)
    for alg in ("RS256", "EdDSA"):
        for what in ("client_credentials", "refresh", "users_me"):
            assert rows[f"{alg}.{what}.dpop"]["cpu_ms"] > 0
            assert "proofs signed before the run" in rows[f"{alg}.{what}.dpop"]["note"]
            dpop = [
                t for t in data["targets"] if t["name"].startswith(f"{alg} {what} DPoP: extra server CPU")
            ]
            assert len(dpop) == 1 and dpop[0]["status"] in {"PASS", "MISS"}, dpop
    assert all(target["status"] in {"PASS", "MISS", "n/a"} for target in data["targets"])
    markdown = (out / "bench.md").read_text()
    assert "| RS256.refresh |" in markdown
    assert "| EdDSA.authorization_code |" in markdown
    assert "## Targets" in markdown
    assert "| RS256.users_me.dpop |" in markdown
    assert "## DPoP (RFC 9449)" in markdown
    for alg in algs:  # issue 18: authsvc's refresh on each database against the peer in memory and on Redis
        for db in ("SQLite", "PostgreSQL"):
            named = {t["name"]: t for t in data["targets"] if t["name"].startswith(f"{alg} refresh ({db})")}
            assert len(named) == 3, named
            measured = db == "SQLite" or drop is not None
            for name, target in named.items():
                if measured and "x peer" in name and target["status"] != "n/a":
                    assert target["detail"].startswith(f"{alg}.rounds."), target  # the interleaved medians
                peer_ok = "x peer" not in name or (
                    PEER_INSTALLED
                    and ("on Redis" not in name or data["meta"]["peer_redis"].startswith("measured"))
                )
                if measured and peer_ok:
                    assert target["status"] in {"PASS", "MISS"}, target
                else:
                    assert target["status"] == "n/a" and "not measured" in target["detail"], target
    assert "## Refresh: authsvc on SQLite and PostgreSQL" in markdown
