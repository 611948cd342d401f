"""The bench's peer, node-oidc-provider (scripts/bench_peer/server.js), mints authorization codes that its
own token endpoint redeems once for an access, a refresh and an ID token: what the bench's
authorization_code row sends it. Needs node and `npm install` in scripts/bench_peer (skipped without).
"""

from __future__ import annotations

import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from benchkit.browser import code_body
from benchkit.config import PEER_DIR
from benchkit.cores import Cores
from benchkit.phases.authorization_code import check_tokens
from benchkit.servers import Proc, Procs, free_port, start_peer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("node") is None or not (PEER_DIR / "node_modules" / "oidc-provider").is_dir(),
        reason="the bench peer needs node and `npm install` in scripts/bench_peer",
    ),
]


@pytest.fixture(params=["RS256", "EdDSA"])
def peer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Proc, str]]:
    procs = Procs()
    control = free_port()
    try:
        proc = start_peer(
            procs,
            Cores(),
            request.param,
            tmp_path,
            secret=secrets.token_urlsafe(32),
            pool=2,
            tokens_file=tmp_path / "tokens.txt",
            control_port=control,
        )
        yield request.param, proc, f"http://127.0.0.1:{control}"
    finally:
        procs.stop_all()


def test_peer_codes_are_redeemed_once_for_three_tokens(peer: tuple[str, Proc, str]) -> None:
    alg, proc, control = peer
    listed = httpx.post(f"{control}/bench/codes", params={"count": 1500}, timeout=60)
    assert listed.status_code == 200, listed.text
    pairs = [line.split(" ") for line in listed.text.splitlines()]
    assert len(pairs) == 1500
    assert len({code for code, _ in pairs}) == 1500
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with httpx.Client(base_url=proc.url, timeout=10) as client:
        # The first minted is still there after 1,499 more (the default adapter kept 1,000 entries).
        for code, verifier in (pairs[0], pairs[-1]):
            body = code_body(code, verifier, "bench-spa")
            tokens = check_tokens(client.post("/token", content=body, headers=form), alg, "peer")
            assert tokens["token_type"] == "Bearer"
            again = client.post("/token", content=body, headers=form)
            assert again.status_code == 400
            assert again.json()["error"] == "invalid_grant"
        code, _ = pairs[1]
        wrong = client.post("/token", content=code_body(code, "x" * 43, "bench-spa"), headers=form)
        assert wrong.status_code == 400
    # The control listener is not the provider's: the measured port has no such route.
    assert httpx.post(f"{proc.url}/bench/codes", params={"count": 1}).status_code == 404
