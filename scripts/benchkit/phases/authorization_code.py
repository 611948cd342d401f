"""The authorization_code row (a public client redeems a code at /token, PKCE), on both servers; sign-in cost.

The same work on both sides: a public client (``token_endpoint_auth_method``
none: client_id in the body), scopes ``openid offline_access read write``, a
code bound to the redirect URI and an S256 challenge; the answer carries a
JWT access token, a refresh token (a new family) and an ID token signed with
the row's algorithm. Every code is redeemed once.

Codes are minted before the timed run. authsvc: a public ``--first-party``
client signs in once through the hosted page (``benchkit.browser``), then each
code is a GET /authorize with the SSO cookie (303 with the code). The peer,
node-oidc-provider: its codes are made in its own process, through its models
(``new provider.AuthorizationCode({...}).save()`` with a saved Grant), and
handed over by its peer-only control listener. How many: what the run can
redeem in its duration, bounded from above by the same server's refresh rate
(a redemption does a refresh's work and more: a code to find and spend, one
more signature), x 1.2, plus two per connection. A run that still used them up
(the generator posted more requests than there were codes) is run again with
twice as many fresh codes.

Sign-in cost (authsvc only): a few sign-ins one after the other, each by a new
browser (no cookies), as many password-grant logins and a few SSO GET
/authorize, and the server's CPU time over each (user + system, every thread,
from /proc): the ``ALG.signin`` row. The password hashes of a sign-in are
counted once per run (with the first algorithm) by timing: a second server
hashes with twice the argon2 time cost, and the growth of its CPU per sign-in
divided by the growth of its CPU per password-grant login (one hash) is the
number of hashes a sign-in runs; everything else either request does is the
same on both servers and cancels out. It should be 1. (authsvc's metrics count
failed logins and tokens issued, not hashes.)
"""

from __future__ import annotations

import base64
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchkit.browser import (
    authorize_with_session,
    code_body,
    mint_codes,
    seed_spa_client,
    sign_in,
)
from benchkit.config import ARGON2, AUTH_CODE_TTL, PASSWORD
from benchkit.console import log
from benchkit.context import Bench
from benchkit.load import Load
from benchkit.report import Row, join_notes
from benchkit.seeding import AuthsvcServer, form_headers, login_body
from benchkit.servers import Proc, cpu_seconds

__all__ = ["check_tokens", "codes_needed", "run_authsvc", "run_peer"]

_FORM = {"Content-Type": "application/x-www-form-urlencoded"}
_MARGIN = 1.2
_FALLBACK_RATE = 3000.0  # req/s, when no refresh row of the same server was measured


def codes_needed(bench: Bench, rate_bound: float | None) -> int:
    """Codes for one timed run: more than it can redeem (``rate_bound`` ≥ the redemption rate)."""
    duration = bench.profile.duration
    seconds = max(1, math.ceil(duration)) if bench.generator.name == "wrk" else duration
    return math.ceil((rate_bound or _FALLBACK_RATE) * seconds * _MARGIN) + 2 * bench.profile.connections


def _rate_bound(bench: Bench, *row_ids: str) -> float | None:
    rates = [row.rps for row_id in row_ids if (row := bench.report.get(row_id)) is not None and row.rps]
    return max(rates) if rates else None


def check_tokens(response: Any, alg: str, who: str) -> dict[str, Any]:
    """The redemption answered 200 with an access token, a refresh token and an ID token of ``alg``."""
    if response.status_code != 200:
        raise RuntimeError(f"{who} authorization_code: {response.status_code} {response.text[:300]}")
    body: dict[str, Any] = response.json()
    missing = [k for k in ("access_token", "refresh_token", "id_token") if not body.get(k)]
    if missing:
        raise RuntimeError(f"{who} authorization_code answer lacks {missing}: {sorted(body)}")
    head = body["id_token"].split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    if header.get("alg") != alg:
        raise RuntimeError(f"{who}: the ID token is signed with {header.get('alg')}, not {alg}")
    return body


def _measure(
    bench: Bench,
    row_id: str,
    label: str,
    proc: Proc,
    supply: Callable[[int], tuple[list[str], str]],
    rate_bound: float | None,
) -> Row:
    """The timed run, on codes minted just before it; again with twice as many if it ran out."""
    count = codes_needed(bench, rate_bound)
    for attempt in range(3):
        bodies, note = supply(count)
        row = bench.measure(
            row_id,
            label,
            "POST",
            Load(proc.url + "/token", method="POST", headers=_FORM, once_bodies=bodies),
            proc=proc,
            ceiling="ceiling.post_raw",
            note=join_notes(f"{len(bodies):,} codes minted before the run, each redeemed once", note),
        )
        if row.requests <= len(bodies) or attempt == 2:
            return row
        log(f"  {row_id}: the run used up its {len(bodies):,} codes; again with {2 * count:,}")
        bench.report.rows.remove(row)
        count *= 2
    raise AssertionError("unreachable")


# --- authsvc ------------------------------------------------------------------------------------
def run_authsvc(bench: Bench, alg: str, server: AuthsvcServer, *, count_hashes: bool = False) -> None:
    """The authorization_code row and the sign-in's CPU; with ``count_hashes``, its password hashes."""
    import httpx

    log(f"{alg}: authsvc browser sign-in (hosted page, first-party public client) and code redemption")
    client_id = seed_spa_client(server, bench.run_id)
    with httpx.Client(base_url=server.url, timeout=60) as browser:
        first = sign_in(browser, server, client_id)
        check_tokens(
            browser.post("/token", content=code_body(first.code, first.verifier, client_id), headers=_FORM),
            alg,
            "authsvc",
        )
        cookies = httpx.Cookies(browser.cookies)
        for _ in range(bench.profile.warmup_requests):
            code, verifier = authorize_with_session(browser, server, client_id)
            check_tokens(
                browser.post("/token", content=code_body(code, verifier, client_id), headers=_FORM),
                alg,
                "authsvc",
            )
        costs = _server_costs(bench, server, client_id, browser)
        _sign_in_row(bench, alg, costs)
    if count_hashes:
        _count_hashes(bench, alg, costs)

    def supply(count: int) -> tuple[list[str], str]:
        minted = mint_codes(server, client_id, cookies, count)
        if minted.seconds > 0.8 * AUTH_CODE_TTL:  # the first codes would expire during the run
            raise RuntimeError(
                f"minting {count:,} codes took {minted.seconds:.0f}s, too close to their lifetime "
                f"({AUTH_CODE_TTL}s, benchkit.config.AUTH_CODE_TTL): a shorter --duration"
            )
        log(
            f"  minted {len(minted.codes):,} codes by SSO GET /authorize in {minted.seconds:.1f}s "
            f"({minted.rate:,.0f}/s; p50 {minted.p50_first_ms:.1f} ms first tenth, "
            f"{minted.p50_last_ms:.1f} ms last tenth)"
        )
        return [code_body(code, verifier, client_id) for code, verifier in minted.codes], (
            f"minted by SSO GET /authorize at {minted.rate:,.0f}/s, p50 {minted.p50_first_ms:.1f} → "
            f"{minted.p50_last_ms:.1f} ms first → last tenth"
        )

    _measure(
        bench,
        f"{alg}.authorization_code",
        f"authsvc POST /token authorization_code, PKCE, public client; access + refresh + ID token ({alg})",
        server.proc,
        supply,
        _rate_bound(bench, f"{alg}.refresh"),
    )


@dataclass
class _Costs:
    """Server CPU ms per operation (None: /proc unreadable), and the sign-ins' latencies."""

    sign_in_ms: float | None
    password_ms: float | None
    sso_ms: float | None
    page_ms: list[float]  # GET /authorize, the login page
    post_ms: list[float]  # POST of the login form


def _server_costs(bench: Bench, server: AuthsvcServer, client_id: str, signed_in: Any) -> _Costs:
    """The server's CPU per SSO GET /authorize, per password-grant login, per sign-in (new browsers)."""
    import httpx

    pid = server.proc.pid
    count = 4 if bench.options.smoke else 12
    sso = 4 * count
    marks = [cpu_seconds(pid)]
    for _ in range(sso):
        authorize_with_session(signed_in, server, client_id)
    marks.append(cpu_seconds(pid))
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for _ in range(count):
            login = client.post("/token", content=login_body(server), headers=form_headers(server))
            if login.status_code != 200:
                raise RuntimeError(f"password grant: {login.status_code} {login.text[:200]}")
    marks.append(cpu_seconds(pid))
    pages: list[float] = []
    posts: list[float] = []
    for _ in range(count):
        with httpx.Client(base_url=server.url, timeout=60) as browser:  # a new browser: no session
            done = sign_in(browser, server, client_id)
        pages.append(done.page_ms)
        posts.append(done.post_ms)
    marks.append(cpu_seconds(pid))

    def per_op(start: int, ops: int) -> float | None:
        before, after = marks[start], marks[start + 1]
        return None if before is None or after is None else (after - before) * 1000 / ops

    return _Costs(per_op(2, count), per_op(1, count), per_op(0, sso), pages, posts)


def _sign_in_row(bench: Bench, alg: str, costs: _Costs) -> None:
    latencies = sorted(page + post for page, post in zip(costs.page_ms, costs.post_ms, strict=True))
    page, post = sorted(costs.page_ms), sorted(costs.post_ms)
    facts: dict[str, Any] = {
        "sign_ins": len(latencies),
        "server_cpu_ms_per_sign_in": costs.sign_in_ms,
        "server_cpu_ms_per_password_login": costs.password_ms,
        "server_cpu_ms_per_sso_authorize": costs.sso_ms,
        "p50_login_page_ms": page[len(page) // 2],
        "p50_login_post_ms": post[len(post) // 2],
    }
    bench.report.meta.setdefault("sign_in_cpu", {})[alg] = facts
    cpu = (
        f"server CPU per sign-in {costs.sign_in_ms:.1f} ms, per password-grant login "
        f"{costs.password_ms:.1f} ms, per SSO GET /authorize {costs.sso_ms:.2f} ms"
        if costs.sign_in_ms is not None and costs.password_ms is not None and costs.sso_ms is not None
        else "server CPU time unreadable (/proc)"
    )
    bench.report.add(
        Row(
            f"{alg}.signin",
            f"authsvc browser sign-in, one after another: GET /authorize (login page) + POST of the "
            f"form → 303 with a code ({alg})",
            "info",
            rps=len(latencies) / (sum(latencies) / 1000),
            p50_ms=latencies[len(latencies) // 2],
            p99_ms=latencies[-1],
            requests=len(latencies),
            ceiling="argon2.hash",
            generator="httpx, sequential",
            note=join_notes(
                cpu,
                f"p50 {facts['p50_login_page_ms']:.1f} ms the page, "
                f"{facts['p50_login_post_ms']:.1f} ms the POST",
            ),
        )
    )


def _inproc_hash_ms(params: list[dict[str, int]], times: int) -> list[float]:
    """Median CPU ms of one hash for each of ``params``, in this process, the hashes interleaved."""
    from authsvc.passwords import PasswordHasher

    hashers = [PasswordHasher(p["memory_kib"], p["time_cost"], p["parallelism"]) for p in params]
    spent: list[list[float]] = [[] for _ in params]
    for hasher in hashers:
        hasher.hash_sync(PASSWORD)
    for _ in range(times):
        for hasher, out in zip(hashers, spent, strict=True):
            start = time.process_time()
            hasher.hash_sync(PASSWORD)
            out.append((time.process_time() - start) * 1000)
    return [statistics.median(out) for out in spent]


def _count_hashes(bench: Bench, alg: str, costs: _Costs) -> None:
    """Password hashes per sign-in: how much a sign-in's CPU grows when one hash grows.

    A second server whose argon2 time cost is twice the shipped one. The growth of the server's
    CPU per sign-in, divided by the growth of its CPU per password-grant login (one hash: the
    bench's password row), counts the hashes: the rest of either request is the same on both
    servers and cancels out. Both growths divided by the growth of one in-process hash are shown
    too (the server's hashes cost it more CPU than the bench's own, and a shared machine makes
    the in-process figure noisy: reference only)."""
    import httpx

    slow = {**ARGON2, "time_cost": 2 * ARGON2["time_cost"]}
    log(f"{alg}: password hashes per sign-in (a second server, argon2 t={slow['time_cost']})")
    workdir = bench.tmp / f"signin-{alg.lower()}-t{slow['time_cost']}"
    proc = bench.start_authsvc(workdir.name, alg, workdir, argon2=slow)
    try:
        server = bench.seed(proc, alg, workdir, argon2=slow)
        client_id = seed_spa_client(server, bench.run_id)
        with httpx.Client(base_url=server.url, timeout=60) as browser:
            sign_in(browser, server, client_id)
            slow_costs = _server_costs(bench, server, client_id, browser)
    finally:
        bench.procs.stop(proc)
    with bench.cores.on_server_core():
        hash_ms, slow_hash_ms = _inproc_hash_ms([ARGON2, slow], 3 if bench.options.smoke else 8)
    facts: dict[str, Any] = {
        "alg": alg,
        "time_costs": [ARGON2["time_cost"], slow["time_cost"]],
        "server_cpu_ms_per_sign_in": [costs.sign_in_ms, slow_costs.sign_in_ms],
        "server_cpu_ms_per_password_login": [costs.password_ms, slow_costs.password_ms],
        "inproc_hash_cpu_ms": [hash_ms, slow_hash_ms],
        "hashes_per_sign_in": None,
    }
    if None not in (costs.sign_in_ms, slow_costs.sign_in_ms, costs.password_ms, slow_costs.password_ms):
        sign_in_grew = float(slow_costs.sign_in_ms or 0) - float(costs.sign_in_ms or 0)
        login_grew = float(slow_costs.password_ms or 0) - float(costs.password_ms or 0)
        hash_grew = slow_hash_ms - hash_ms
        if login_grew > 0:
            facts["hashes_per_sign_in"] = sign_in_grew / login_grew
        if hash_grew > 0:
            facts["inproc_hashes_per_sign_in"] = sign_in_grew / hash_grew
            facts["inproc_hashes_per_password_login"] = login_grew / hash_grew
    bench.report.meta["sign_in_hashes"] = facts
    if facts["hashes_per_sign_in"] is not None:
        log(f"  ≈ {facts['hashes_per_sign_in']:.2f} password hashes per sign-in (a password-grant login: 1)")


# --- the peer -----------------------------------------------------------------------------------
def run_peer(bench: Bench, alg: str, proc: Proc, control_url: str) -> None:
    """node-oidc-provider's authorization_code grant, its codes minted in its own process."""
    import httpx

    def fetch(count: int) -> list[tuple[str, str]]:
        response = httpx.post(f"{control_url}/bench/codes", params={"count": count}, timeout=120)
        if response.status_code != 200:
            raise RuntimeError(f"peer /bench/codes: {response.status_code} {response.text[:300]}")
        pairs = [tuple(line.split(" ", 1)) for line in response.text.splitlines() if line]
        return [(code, verifier) for code, verifier in pairs]

    client_id = "bench-spa"
    with httpx.Client(base_url=proc.url, timeout=10) as client:
        for code, verifier in fetch(bench.profile.warmup_requests):
            check_tokens(
                client.post("/token", content=code_body(code, verifier, client_id), headers=_FORM),
                alg,
                "peer",
            )

    def supply(count: int) -> tuple[list[str], str]:
        return [code_body(code, verifier, client_id) for code, verifier in fetch(count)], (
            "minted in the peer's process (AuthorizationCode + Grant models)"
        )

    _measure(
        bench,
        f"{alg}.peer.authorization_code",
        f"node-oidc-provider authorization_code, PKCE, public client; JWT AT + refresh + ID token ({alg})",
        proc,
        supply,
        _rate_bound(bench, f"{alg}.peer.refresh", f"{alg}.peer.refresh_rotating"),
    )
