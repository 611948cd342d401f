"""scripts/bench.py --smoke runs every code path of the benchmark and writes its results.

No timing is asserted: only that the run finishes, the JSON holds every row the
full run reports (peer rows aside: the smoke run never starts the peer), and
the load runs got answers rather than errors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

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


@pytest.mark.slow
def test_bench_smoke_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--smoke", "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    data = json.loads((out / "bench.json").read_text())
    rows = {row["id"]: row for row in data["rows"]}
    assert not EXPECTED - set(rows), sorted(EXPECTED - set(rows))
    assert not any(row_id.split(".")[1:2] == ["peer"] for row_id in rows), "smoke never runs the peer"
    assert "skipped" in data["meta"]["peer"]

    for row_id in EXPECTED - {"ceiling.post_form"}:
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
