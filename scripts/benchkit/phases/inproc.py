"""In-process rows: authsvc's sign and the verifier's verify beside raw ``cryptography``; one argon2 hash;
``authsvc.dpop.check_proof`` on a proof of the same algorithm (no replay store: the proof's own check).

The verifier twice (issue 18): on tokens it has never seen, beside PyJWT's ``decode`` of the same
tokens, and on a token seen before (its cache of verified tokens).

Measured on the server core, so that they compare with the HTTP rows.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import math
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from benchkit.config import ARGON2, PASSWORD, SCOPES
from benchkit.console import log
from benchkit.context import Bench
from benchkit.report import Row
from benchkit.stats import percentile

if TYPE_CHECKING:
    from authsvc.keys.generate import GeneratedKey

__all__ = ["measure_argon2", "measure_crypto", "run"]

_Timing = tuple[int, float, list[float]]  # count, seconds, sorted latencies


def run(bench: Bench) -> None:
    log("in-process: sign and verify beside raw cryptography; one argon2 hash")
    with bench.cores.on_server_core():
        for alg in bench.options.algs:
            for row in measure_crypto(alg, bench.profile.crypto_seconds):
                bench.report.add(row)
        bench.report.add(measure_argon2(3 if bench.options.smoke else 7))


def _timed(fn: Callable[[], object], seconds: float) -> _Timing:
    for _ in range(20):
        fn()
    latencies: list[float] = []
    clock = time.perf_counter
    start = clock()
    deadline = start + seconds
    for _ in range(10_000_000):
        t0 = clock()
        fn()
        t1 = clock()
        latencies.append(t1 - t0)
        if t1 >= deadline:
            break
    return len(latencies), clock() - start, sorted(latencies)


def _crypto_row(row_id: str, label: str, timing: _Timing, ceiling: str | None) -> Row:
    count, elapsed, latencies = timing
    return Row(
        id=row_id,
        label=label,
        kind="inproc",
        rps=count / elapsed,
        p50_ms=percentile(latencies, 0.5) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        requests=count,
        ceiling=ceiling,
        generator="in-process",
    )


def _alg_desc(alg: str) -> str:
    return "RSA-2048 PKCS1v15 SHA-256" if alg == "RS256" else "Ed25519"


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw_crypto(private: object, data: bytes, signature: bytes) -> tuple[Callable[[], object], ...]:
    """Sign and verify with ``cryptography`` directly, the way joserfc calls it for the key's type."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

    if isinstance(private, rsa.RSAPrivateKey):
        rsa_key, rsa_public = private, private.public_key()
        return (
            lambda: rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA256()),
            lambda: rsa_public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256()),
        )
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    ed_key, ed_public = private, private.public_key()
    return (lambda: ed_key.sign(data), lambda: ed_public.verify(signature, data))


def measure_crypto(alg: str, seconds: float) -> list[Row]:
    from authsvc.keys.generate import generate_key, jose_key
    from authsvc.keys.ring import LoadedKey
    from authsvc.tokens.issuer import ACCESS_TYP, new_jti, sign

    issuer = "http://127.0.0.1:9"
    generated = generate_key(alg)
    loaded = LoadedKey(generated.kid, alg, jose_key(generated.private_key))
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": "u_" + secrets.token_urlsafe(16),
        "aud": "authsvc",
        "exp": now + 900,
        "iat": now,
        "jti": new_jti(),
        "client_id": "bench-client",
        "scope": SCOPES,
        "sid": "s_" + secrets.token_urlsafe(16),
    }
    token = sign(loaded, ACCESS_TYP, claims)
    signing_input, _, signature_b64 = token.rpartition(".")
    raw_sign, raw_verify = _raw_crypto(
        generated.private_key, signing_input.encode(), _b64url_decode(signature_b64)
    )
    rows = [
        _crypto_row(
            f"{alg}.inproc.raw_sign",
            f"raw cryptography sign ({_alg_desc(alg)})",
            _timed(raw_sign, seconds),
            None,
        ),
        _crypto_row(
            f"{alg}.inproc.sign",
            f"authsvc.tokens.issuer.sign, access token ({alg})",
            _timed(lambda: sign(loaded, ACCESS_TYP, claims), seconds),
            f"{alg}.inproc.raw_sign",
        ),
        _crypto_row(
            f"{alg}.inproc.raw_verify",
            f"raw cryptography verify ({_alg_desc(alg)})",
            _timed(raw_verify, seconds),
            None,
        ),
    ]
    pool = [sign(loaded, ACCESS_TYP, {**claims, "jti": new_jti()}) for _ in range(_pool_size(seconds))]
    rows += _verifier_rows(alg, issuer, generated, token, pool, seconds)
    rows.append(_dpop_check_row(alg, seconds))
    return rows


def _pool_size(seconds: float) -> int:
    """Distinct tokens for the first-seen rows: enough that cycling them never hits the cache."""
    return 2000 if seconds >= 0.5 else 40


def _verifier_rows(
    alg: str, issuer: str, generated: GeneratedKey, token: str, pool: list[str], seconds: float
) -> list[Row]:
    """The verifier on tokens it has not seen (cycling ``pool`` through a cache half its size, so
    every call misses and inserts), PyJWT's ``decode`` on the same tokens with the key object,
    and the verifier on one token seen before (a cache hit)."""
    import httpx
    import jwt

    from authsvc.verifier import Verifier

    jwks = {"keys": [generated.public_jwk]}
    public = generated.private_key.public_key()

    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=jwks, headers={"Cache-Control": "public, max-age=300"})

    async def verify_loops() -> tuple[_Timing, _Timing]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            first_seen = Verifier(issuer, "authsvc", http=http, token_cache_size=len(pool) // 2)
            repeat = Verifier(issuer, "authsvc", http=http)
            for _ in range(20):
                await repeat.verify(token)
            await first_seen.verify(pool[0])
            return await _timed_async(first_seen.verify, pool, seconds), await _timed_hits(
                repeat.verify, token, seconds
            )

    def pyjwt_decode(compact: str) -> object:
        return jwt.decode(compact, public, algorithms=[alg], audience="authsvc", issuer=issuer)

    first_seen, repeat = asyncio.run(verify_loops())
    return [
        _crypto_row(
            f"{alg}.inproc.verify",
            f"authsvc.verifier Verifier.verify, first-seen tokens ({len(pool)} distinct), "
            f"cached JWKS ({alg})",
            first_seen,
            f"{alg}.inproc.raw_verify",
        ),
        _crypto_row(
            f"{alg}.inproc.pyjwt_decode",
            f"PyJWT jwt.decode with the key object, the same {len(pool)} tokens ({alg})",
            _timed_pool(pyjwt_decode, pool, seconds),
            f"{alg}.inproc.raw_verify",
        ),
        _crypto_row(
            f"{alg}.inproc.verify_repeat",
            f"authsvc.verifier Verifier.verify, a token seen before: cache hit ({alg}); "
            "each call gets a fresh copy of the string (its hash not cached), made outside the timing",
            repeat,
            f"{alg}.inproc.raw_verify",
        ),
    ]


def _timed_pool(fn: Callable[[str], object], pool: list[str], seconds: float) -> _Timing:
    """``_timed`` over the tokens of ``pool`` in turn."""
    turn = itertools.cycle(pool)
    return _timed(lambda: fn(next(turn)), seconds)


async def _timed_async(fn: Callable[[str], Awaitable[object]], pool: list[str], seconds: float) -> _Timing:
    """``_timed`` for a coroutine function, over the tokens of ``pool`` in turn."""
    latencies: list[float] = []
    clock = time.perf_counter
    start = clock()
    deadline = start + seconds
    for compact in itertools.cycle(pool):
        t0 = clock()
        await fn(compact)
        t1 = clock()
        latencies.append(t1 - t0)
        if t1 >= deadline:
            break
    return len(latencies), clock() - start, sorted(latencies)


async def _timed_hits(fn: Callable[[str], Awaitable[object]], token: str, seconds: float) -> _Timing:
    """Calls with one token, each on a new copy of the string as a request would bring it.

    The copy is made outside the timing, so the rate is calls ÷ the time spent in them.
    """
    latencies: list[float] = []
    clock = time.perf_counter
    head, tail = token[:-1], token[-1]
    deadline = clock() + seconds
    for _ in range(50_000_000):
        fresh = head + tail
        t0 = clock()
        await fn(fresh)
        t1 = clock()
        latencies.append(t1 - t0)
        if t1 >= deadline:
            break
    return len(latencies), math.fsum(latencies), sorted(latencies)


def _dpop_check_row(alg: str, seconds: float) -> Row:
    """``authsvc.dpop.check_proof`` (what the server and the verifier run for a proof, its jti aside)."""
    from authsvc.dpop import check_proof
    from benchkit.dpop_proofs import new_proof_key, sign_proofs

    url = "http://127.0.0.1:9/token"
    pool = sign_proofs(new_proof_key(alg), "POST", url, 1)
    proof, now = pool.proofs[0], float(int(pool.signed_at))
    return _crypto_row(
        f"{alg}.inproc.dpop_check",
        f"authsvc.dpop.check_proof, one {alg} proof (its jti not recorded)",
        _timed(lambda: check_proof(proof, method="POST", url=url, now=now, skew=60), seconds),
        f"{alg}.inproc.raw_verify",
    )


def measure_argon2(times: int) -> Row:
    from authsvc.passwords import PasswordHasher

    hasher = PasswordHasher(ARGON2["memory_kib"], ARGON2["time_cost"], ARGON2["parallelism"])
    hasher.hash_sync(PASSWORD)
    latencies = []
    for _ in range(times):
        t0 = time.perf_counter()
        hasher.hash_sync(PASSWORD)
        latencies.append(time.perf_counter() - t0)
    latencies.sort()
    return Row(
        id="argon2.hash",
        label=f"one argon2id hash, m={ARGON2['memory_kib']} t={ARGON2['time_cost']} "
        f"p={ARGON2['parallelism']}",
        kind="inproc",
        rps=1 / statistics.median(latencies),
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[-1] * 1000,
        requests=times,
        generator="in-process",
        note="authsvc.passwords.PasswordHasher, in-process",
    )
