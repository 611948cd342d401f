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
more signature), x 1.5, plus two per connection. A run that still used them up
(the generator posted more requests than there were codes) is run again with
twice as many fresh codes.

Sign-in cost (authsvc only): a few sign-ins one after the other, each by a new
browser (no cookies), and as many password-grant logins (one password hash
each, the bench's password row), the server's CPU time over each (user +
system, every thread, from /proc): hashes per sign-in ≈ 1 + (CPU per sign-in -
CPU per password login) ÷ one in-process argon2 hash. A second hash would add
about 1; the rest of both requests (a page and a session here, two signatures
there) is a few milliseconds. It should be 1. (authsvc exposes no count of
hashes: its metrics count logins failed and tokens issued, not hashes.) The
server's CPU for an SSO GET /authorize (the minting of one code) is reported
beside it.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from typing import Any

from benchkit.browser import (
    authorize_with_session,
    code_body,
    mint_codes,
    seed_spa_client,
    sign_in,
)
from benchkit.config import AUTH_CODE_TTL
from benchkit.console import log
from benchkit.context import Bench
from benchkit.load import Load
from benchkit.report import Row, join_notes
from benchkit.seeding import AuthsvcServer, form_headers, login_body
from benchkit.servers import Proc, cpu_seconds

__all__ = ["check_tokens", "codes_needed", "run_authsvc", "run_peer"]

_FORM = {"Content-Type": "application/x-www-form-urlencoded"}
_MARGIN = 1.5
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
def run_authsvc(bench: Bench, alg: str, server: AuthsvcServer) -> None:
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
        _sign_in_cost(bench, alg, server, client_id, browser)

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


def _sign_in_cost(bench: Bench, alg: str, server: AuthsvcServer, client_id: str, signed_in: Any) -> None:
    """Password hashes per sign-in, from the server's CPU time (see the module's docstring)."""
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
    latencies = sorted(page + post for page, post in zip(pages, posts, strict=True))
    pages.sort()
    posts.sort()
    argon = bench.report.get("argon2.hash")
    hash_ms = argon.p50_ms if argon is not None else None
    facts: dict[str, Any] = {
        "sign_ins": count,
        "password_logins": count,
        "sso_authorizations": sso,
        "p50_login_page_ms": pages[len(pages) // 2],
        "p50_login_post_ms": posts[len(posts) // 2],
    }
    note = "server CPU time unreadable (/proc)"
    if all(mark is not None for mark in marks):
        at = [float(mark or 0) for mark in marks]
        sso_ms = (at[1] - at[0]) * 1000 / sso
        password_ms = (at[2] - at[1]) * 1000 / count
        signin_ms = (at[3] - at[2]) * 1000 / count
        facts |= {
            "server_cpu_ms_per_sign_in": signin_ms,
            "server_cpu_ms_per_password_login": password_ms,
            "server_cpu_ms_per_sso_authorize": sso_ms,
        }
        note = (
            f"server CPU per sign-in {signin_ms:.1f} ms, per password-grant login {password_ms:.1f} ms, "
            f"per SSO GET /authorize {sso_ms:.2f} ms"
        )
        if hash_ms:
            hashes = 1 + (signin_ms - password_ms) / hash_ms
            facts |= {"hash_ms": hash_ms, "hashes_per_sign_in": hashes}
            note += f"; ≈ {hashes:.2f} password hashes (of {hash_ms:.1f} ms in-process)"
    bench.report.meta.setdefault("sign_in", {})[alg] = facts
    bench.report.add(
        Row(
            f"{alg}.signin",
            f"authsvc browser sign-in, one after another: GET /authorize (login page) + POST of the "
            f"form → 303 with a code ({alg})",
            "info",
            rps=count / (sum(latencies) / 1000),
            p50_ms=latencies[len(latencies) // 2],
            p99_ms=latencies[-1],
            requests=count,
            ceiling="argon2.hash",
            generator="httpx, sequential",
            note=join_notes(
                note,
                f"p50 {facts['p50_login_page_ms']:.1f} ms the page, "
                f"{facts['p50_login_post_ms']:.1f} ms the POST",
            ),
        )
    )


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
