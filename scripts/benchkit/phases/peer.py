"""The peer, node-oidc-provider (``scripts/bench_peer``), on the same core with the same generator.

JWKS, client_credentials (a JWT access token through a resource indicator),
refresh without rotation (the ANCHORS.md setup: one token reused) and with
rotation, chained like authsvc's, and authorization_code (a public client's
PKCE redemption, ``benchkit.phases.authorization_code``); DPoP beside
client_credentials and rotating refresh, and userinfo (its protected resource)
bearer and DPoP-bound (``benchkit.phases.dpop``). Its in-memory adapter
is the default one over a larger LRU (``server.js``: the default keeps about
1,000 entries, and the codes minted before a run would be evicted). Optional: skipped without node or without
``npm install``.
"""

from __future__ import annotations

import secrets
import shutil

from benchkit.config import PEER_DIR, Options
from benchkit.console import log
from benchkit.context import Bench
from benchkit.dpop_proofs import new_proof_key
from benchkit.load import Load
from benchkit.phases import authorization_code, dpop
from benchkit.servers import basic_auth, free_port, start_peer

__all__ = ["available", "run"]


def available(options: Options) -> tuple[bool, str]:
    """Whether this run measures the peer, and the status line the report shows."""
    if options.smoke or options.no_peer:
        return False, "skipped (--smoke)" if options.smoke else "skipped (--no-peer)"
    if shutil.which("node") is None:
        return False, "skipped: node is not installed"
    if not (PEER_DIR / "node_modules" / "oidc-provider").is_dir():
        return False, "skipped: run `cd scripts/bench_peer && npm install` first"
    return True, "measured"


def run(bench: Bench, alg: str) -> None:
    import httpx

    log(f"{alg}: the peer, node-oidc-provider")
    workdir = bench.tmp / f"peer-{alg.lower()}"
    workdir.mkdir()
    secret = secrets.token_urlsafe(32)
    tokens_file = workdir / "tokens.txt"
    control_port = free_port()
    proc = start_peer(
        bench.procs,
        bench.cores,
        alg,
        workdir,
        secret=secret,
        pool=bench.pool_size,
        tokens_file=tokens_file,
        control_port=control_port,
    )
    try:
        lines = [line.split(" ", 1) for line in tokens_file.read_text().splitlines() if line]
        norot = [tok for cid, tok in lines if cid == "bench"]
        rot = [tok for cid, tok in lines if cid == "bench-rot"]
        rot_dpop = [tok for cid, tok in lines if cid == "bench-rot-dpop"]
        key = new_proof_key(alg)  # the DPoP rows' client key, proofs of the row's algorithm
        post = {"Content-Type": "application/x-www-form-urlencoded"}
        bench_auth = {**post, "Authorization": basic_auth("bench", secret)}
        rot_auth = {**post, "Authorization": basic_auth("bench-rot", secret)}
        cc_body = "grant_type=client_credentials&scope=read%20write"
        refresh_norot = f"grant_type=refresh_token&refresh_token={norot[0]}"
        with httpx.Client(base_url=proc.url, timeout=10) as client:
            for _ in range(bench.profile.warmup_requests):
                for response in (
                    client.get("/jwks"),
                    client.post("/token", content=cc_body, headers=bench_auth),
                    client.post("/token", content=refresh_norot, headers=bench_auth),
                ):
                    if response.status_code != 200:
                        raise RuntimeError(f"peer warm-up: {response.status_code} {response.text[:200]}")
        bench.measure(
            f"{alg}.peer.jwks",
            f"node-oidc-provider GET /jwks ({alg})",
            "GET",
            Load(proc.url + "/jwks"),
            proc=proc,
            ceiling="ceiling.get_bytes",
        )
        bench.measure(
            f"{alg}.peer.client_credentials",
            f"node-oidc-provider client_credentials, JWT AT via resource indicator ({alg})",
            "POST",
            Load(proc.url + "/token", method="POST", headers=bench_auth, body=cc_body),
            proc=proc,
            ceiling="ceiling.post_raw",
        )
        dpop.peer_client_credentials(bench, alg, proc, secret, key)
        bench.measure(
            f"{alg}.peer.refresh",
            f"node-oidc-provider refresh_token, rotation off, JWT AT ({alg})",
            "POST",
            Load(proc.url + "/token", method="POST", headers=bench_auth, body=refresh_norot),
            proc=proc,
            ceiling="ceiling.post_raw",
            note="the ANCHORS.md setup: one refresh token reused",
        )
        bench.measure(
            f"{alg}.peer.refresh_rotating",
            f"node-oidc-provider refresh_token, rotation on, chained ({alg})",
            "POST",
            Load(proc.url + "/token", method="POST", headers=rot_auth, chain_tokens=rot),
            proc=proc,
            ceiling="ceiling.post_raw",
            note=f"{len(rot)} families chained, like authsvc",
        )
        dpop.peer_refresh(bench, alg, proc, secret, key, rot_dpop)
        dpop.peer_userinfo(bench, alg, proc, f"http://127.0.0.1:{control_port}", key)
        authorization_code.run_peer(bench, alg, proc, f"http://127.0.0.1:{control_port}")
    finally:
        bench.procs.stop(proc)
