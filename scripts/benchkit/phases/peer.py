"""The peer, node-oidc-provider (``scripts/bench_peer``), on the same core with the same generator.

JWKS, client_credentials (a JWT access token through a resource indicator),
refresh without rotation (the ANCHORS.md setup: one token reused) and with
rotation, chained like authsvc's, and authorization_code (a public client's
PKCE redemption, ``benchkit.phases.authorization_code``); DPoP beside
client_credentials and rotating refresh, and userinfo (its protected resource)
bearer and DPoP-bound (``benchkit.phases.dpop``). Its in-memory adapter
is the default one over a larger LRU (``server.js``: the default keeps about
1,000 entries, and the codes minted before a run would be evicted). Optional: skipped without node or without
``npm ci`` (or ``npm install``) in ``scripts/bench_peer``.

Then the same peer once more, on its Redis adapter (``redis_adapter.js``, ioredis: its production
setup), for the rows whose cost is its storage: client_credentials (stores nothing: the control),
refresh without and with rotation (``ALG.peer_redis.*``). Its keys live under a prefix of this run's
and alg's, in the database of ``--redis-url``; the peer deletes them at its start and its exit. When
Redis does not answer, or with ``--no-redis``, those rows are reported as skipped, with the reason.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from benchkit.config import PEER_DIR, PEER_REDIS_PREFIX, Options
from benchkit.console import log
from benchkit.context import Bench
from benchkit.dpop_proofs import new_proof_key
from benchkit.load import Load
from benchkit.phases import authorization_code, dpop
from benchkit.report import Row
from benchkit.servers import Proc, form_auth, free_port, start_peer

__all__ = ["REDIS_ROWS", "available", "redact", "redis_available", "run", "run_redis", "start", "tokens"]

#: The rows of the peer on Redis: (what, label); each is ``ALG.peer_redis.<what>``.
REDIS_ROWS = (
    ("client_credentials", "client_credentials, JWT AT via resource indicator (stores nothing)"),
    ("refresh", "refresh_token, rotation off, JWT AT"),
    ("refresh_rotating", "refresh_token, rotation on, chained"),
)


def available(options: Options) -> tuple[bool, str]:
    """Whether this run measures the peer, and the status line the report shows."""
    if options.no_peer:
        return False, "skipped (--no-peer)"
    if shutil.which("node") is None:
        return False, "skipped: node is not installed"
    if not (PEER_DIR / "node_modules" / "oidc-provider").is_dir():
        return False, "skipped: run `cd scripts/bench_peer && npm ci` first"
    return True, "measured"


def redact(url: str) -> str:
    """The URL without its password, for the report."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{netloc}"))


def redis_available(options: Options, peer_ok: bool) -> tuple[str | None, str]:
    """The Redis URL of the peer's Redis adapter when this run measures it (else None), and its status."""
    if not peer_ok:
        return None, "skipped: the peer is not measured"
    if options.redis_url is None:
        return None, "skipped (--no-redis)"
    if not (PEER_DIR / "node_modules" / "ioredis").is_dir():
        return None, "skipped: ioredis is not installed, run `cd scripts/bench_peer && npm ci`"
    import redis

    shown = redact(options.redis_url)
    try:
        client = redis.Redis.from_url(options.redis_url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # any failure to answer is a reason to skip, printed with the rows
        return None, f"skipped: Redis at {shown} does not answer ({type(exc).__name__}: {exc})"
    return options.redis_url, f"measured on {shown} (the Redis server itself is not pinned)"


def start(
    bench: Bench, alg: str, name: str, redis_url: str | None = None, pool: int | None = None
) -> tuple[Proc, str, Path, int]:
    """The peer of ``alg``: its process, its client secret, its tokens file and its control port;
    ``pool`` refresh tokens per client (default the bench's pool)."""
    workdir = bench.tmp / f"{name}-{alg.lower()}"
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
        pool=pool or bench.pool_size,
        tokens_file=tokens_file,
        control_port=control_port,
        redis_url=redis_url,
        redis_prefix=f"{PEER_REDIS_PREFIX}{bench.run_id}:{alg.lower()}:" if redis_url else None,
    )
    return proc, secret, tokens_file, control_port


def tokens(tokens_file: Path, client_id: str) -> list[str]:
    """The refresh tokens the peer wrote for ``client_id``."""
    lines = [line.split(" ", 1) for line in tokens_file.read_text().splitlines() if line]
    return [tok for cid, tok in lines if cid == client_id]


def _warm(bench: Bench, proc: Proc, requests: list[tuple[str, str, dict[str, str] | None]]) -> None:
    """Each (method, path, headers-and-body) request ``warmup_requests`` times; each must answer 200."""
    import httpx

    with httpx.Client(base_url=proc.url, timeout=10) as client:
        for _ in range(bench.profile.warmup_requests):
            for method, path, form in requests:
                if form is None:
                    response = client.request(method, path)
                else:
                    body = form["body"]
                    headers = {k: v for k, v in form.items() if k != "body"}
                    response = client.request(method, path, content=body, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"peer warm-up: {response.status_code} {response.text[:200]}")


def run(bench: Bench, alg: str) -> None:
    log(f"{alg}: the peer, node-oidc-provider (in-memory adapter)")
    proc, secret, tokens_file, control_port = start(bench, alg, "peer")
    try:
        norot = tokens(tokens_file, "bench")
        rot = tokens(tokens_file, "bench-rot")
        rot_dpop = tokens(tokens_file, "bench-rot-dpop")
        key = new_proof_key(alg)  # the DPoP rows' client key, proofs of the row's algorithm
        bench_auth = form_auth("bench", secret)
        rot_auth = form_auth("bench-rot", secret)
        cc_body = "grant_type=client_credentials&scope=read%20write"
        refresh_norot = f"grant_type=refresh_token&refresh_token={norot[0]}"
        _warm(
            bench,
            proc,
            [
                ("GET", "/jwks", None),
                ("POST", "/token", {**bench_auth, "body": cc_body}),
                ("POST", "/token", {**bench_auth, "body": refresh_norot}),
            ],
        )
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


def run_redis(bench: Bench, alg: str) -> None:
    """The peer on its Redis adapter: client_credentials, refresh without and with rotation (chained).

    Without Redis (``bench.peer_redis_url`` None) the rows are added as skipped, with the reason."""
    if bench.peer_redis_url is None:
        reason = bench.report.meta.get("peer_redis", "skipped")
        for what, label in REDIS_ROWS:
            bench.report.add(
                Row(
                    f"{alg}.peer_redis.{what}",
                    f"node-oidc-provider on Redis {label} ({alg})",
                    "POST",
                    note=reason,
                )
            )
        return
    log(f"{alg}: the peer, node-oidc-provider (Redis adapter)")
    proc, secret, tokens_file, _ = start(bench, alg, "peer-redis", redis_url=bench.peer_redis_url)
    try:
        norot = tokens(tokens_file, "bench")
        rot = tokens(tokens_file, "bench-rot")
        bench_auth = form_auth("bench", secret)
        rot_auth = form_auth("bench-rot", secret)
        cc_body = "grant_type=client_credentials&scope=read%20write"
        refresh_norot = f"grant_type=refresh_token&refresh_token={norot[0]}"
        _warm(
            bench,
            proc,
            [
                ("POST", "/token", {**bench_auth, "body": cc_body}),
                ("POST", "/token", {**bench_auth, "body": refresh_norot}),
            ],
        )
        bodies = {"client_credentials": cc_body, "refresh": refresh_norot}
        notes = {
            "client_credentials": "nothing stored: the control row of the Redis peer",
            "refresh": "one refresh token reused",
            "refresh_rotating": f"{len(rot)} families chained, like authsvc",
        }
        for what, label in REDIS_ROWS:
            load = (
                Load(proc.url + "/token", method="POST", headers=rot_auth, chain_tokens=rot)
                if what == "refresh_rotating"
                else Load(proc.url + "/token", method="POST", headers=bench_auth, body=bodies[what])
            )
            bench.measure(
                f"{alg}.peer_redis.{what}",
                f"node-oidc-provider on Redis {label} ({alg})",
                "POST",
                load,
                proc=proc,
                ceiling="ceiling.post_raw",
                note=notes[what],
            )
    finally:
        bench.procs.stop(proc)
