"""DPoP rows (RFC 9449), each measured right after its bearer row on the same server, authsvc and the peer.

authsvc: client_credentials with a proof (``ALG.client_credentials.dpop``),
refresh (rotating, chained, its own families) with a proof
(``ALG.refresh.dpop``), GET /users/me with a DPoP-bound access token and a
proof naming it (``ath``; ``ALG.users_me.dpop``). The peer, node-oidc-provider:
the same two grants (``ALG.peer.client_credentials.dpop``,
``ALG.peer.refresh_rotating.dpop``) and, as it has no /users/me, its userinfo
endpoint (``/me``) with an opaque access token minted in its process, bearer
(``ALG.peer.userinfo``) and DPoP-bound (``ALG.peer.userinfo.dpop``).

Proofs are signed with the row's algorithm (RS256: RSA-2048, EdDSA: Ed25519)
by one client key per row, before the timed run, one per request it may send
(``benchkit.dpop_proofs``): as many as the bearer row's rate allows in the
run's duration (a DPoP request does all the bearer request's work and more),
x 1.2, plus two per connection; a run that still used them up is run again
with twice as many. Each proof's ``iat`` is the time it was signed: signing
plus the run must fit in the server's skew window (authsvc: AUTHSVC_CLOCK_SKEW,
its default 60 s; the peer: 300 s), else the row stops with a message.

Every row's server CPU per request is taken from /proc (``Row.cpu_ms``); the
DPoP target compares the DPoP row's extra CPU over its bearer row's with one
raw ``cryptography`` verify of the proof's algorithm (``ALG.inproc.raw_verify``,
the same run; ``benchkit.targets``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from benchkit.config import DPOP_PEER_SKEW, DPOP_SKEW
from benchkit.console import log
from benchkit.context import Bench
from benchkit.dpop_proofs import ProofKey, ProofPool, sign_proofs
from benchkit.load import Load
from benchkit.phases.authorization_code import codes_needed
from benchkit.report import Row, join_notes
from benchkit.seeding import AuthsvcServer, form_headers, login_body
from benchkit.servers import Proc, form_auth

__all__ = [
    "authsvc_client_credentials",
    "authsvc_refresh",
    "authsvc_users_me",
    "check_dpop_tokens",
    "peer_client_credentials",
    "peer_refresh",
    "peer_userinfo",
    "proofs_needed",
]

_CC_BODY = "grant_type=client_credentials&scope=read%20write"


def proofs_needed(bench: Bench, rate_bound: float | None) -> int:
    """Proofs for one timed run: more than it can send (``rate_bound`` ≥ the row's rate)."""
    return codes_needed(bench, rate_bound)


def _claims(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def check_dpop_tokens(response: Any, key: ProofKey, who: str) -> dict[str, Any]:
    """A token answer of ``token_type`` DPoP whose (JWT) access token is bound to ``key``."""
    if response.status_code != 200:
        raise RuntimeError(f"{who} DPoP token request: {response.status_code} {response.text[:300]}")
    body: dict[str, Any] = response.json()
    if body.get("token_type") != "DPoP":
        raise RuntimeError(f"{who}: token_type {body.get('token_type')!r} with a DPoP proof")
    cnf = _claims(body["access_token"]).get("cnf")
    if not isinstance(cnf, dict) or cnf.get("jkt") != key.jkt:
        raise RuntimeError(f"{who}: the access token's cnf {cnf!r} does not name the proof key")
    return body


def _measure(
    bench: Bench,
    row_id: str,
    label: str,
    kind: str,
    proc: Proc,
    sign: Callable[[int], ProofPool],
    load: Callable[[list[str]], Load],
    rate_bound: float | None,
    skew: float,
    note: str,
    chains: _ChainPools | None = None,
) -> Row:
    """The timed run on proofs signed just before it; again with twice as many if it ran out
    (a chained row only when it has fresh families for another attempt)."""
    count = proofs_needed(bench, rate_bound)
    for attempt in range(3):
        pool = sign(count)
        budget = pool.seconds + max(1.0, bench.profile.duration) + 1
        if budget > 0.8 * skew:
            raise RuntimeError(
                f"{row_id}: signing {len(pool):,} proofs took {pool.seconds:.1f}s; with the run their iat "
                f"would leave the server's {skew:.0f}s window (a shorter --duration)"
            )
        row = bench.measure(
            row_id,
            label,
            kind,
            load(pool.proofs),
            proc=proc,
            ceiling="ceiling.post_raw" if kind == "POST" else "ceiling.get_bytes",
            note=join_notes(
                f"{len(pool):,} proofs signed before the run ({pool.seconds:.1f}s), one per request", note
            ),
        )
        if row.requests <= len(pool) or attempt == 2 or (chains is not None and not chains.can_refill):
            return row
        log(f"  {row_id}: the run used up its {len(pool):,} proofs; again with {2 * count:,}")
        bench.report.rows.remove(row)
        count *= 2
    raise AssertionError("unreachable")


class _ChainPools:
    """Refresh tokens to chain, unspent for every attempt of a row: a run spends the ones it
    was given, so a second attempt (its proofs ran out) needs families of its own, or every
    request of it would present a spent token (reuse: 400)."""

    def __init__(self, first: list[str], more: Callable[[], list[str]] | None) -> None:
        self._first: list[str] | None = first
        self._more = more

    @property
    def can_refill(self) -> bool:
        return self._more is not None

    def next(self) -> list[str]:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        if self._more is None:
            raise RuntimeError("a chained row ran out of proofs and has no fresh families to try again")
        return self._more()


def _rate(bench: Bench, row_id: str) -> float | None:
    row = bench.report.get(row_id)
    return row.rps if row is not None and row.rps else None


# --- authsvc ------------------------------------------------------------------------------------
def authsvc_client_credentials(bench: Bench, alg: str, server: AuthsvcServer, key: ProofKey) -> None:
    import httpx

    url = server.url + "/token"
    form = form_headers(server)
    with httpx.Client(timeout=30) as client:
        for proof in sign_proofs(key, "POST", url, bench.profile.warmup_requests).proofs:
            response = client.post(url, content=_CC_BODY, headers={**form, "DPoP": proof})
            check_dpop_tokens(response, key, "authsvc client_credentials")
    _measure(
        bench,
        f"{alg}.client_credentials.dpop",
        f"authsvc POST /token client_credentials, client_secret_basic, DPoP proof ({alg} proofs)",
        "POST",
        server.proc,
        lambda n: sign_proofs(key, "POST", url, n),
        lambda proofs: Load(url, method="POST", headers=form, body=_CC_BODY, proofs=proofs),
        _rate(bench, f"{alg}.client_credentials"),
        DPOP_SKEW,
        "",
    )


def authsvc_users_me(bench: Bench, alg: str, server: AuthsvcServer, key: ProofKey) -> None:
    """/users/me with an access token bound to ``key`` (a password login with a proof)."""
    import httpx

    token_url, me_url = server.url + "/token", server.url + "/users/me"
    with httpx.Client(timeout=30) as client:
        login = client.post(
            token_url,
            content=login_body(server),
            headers={**form_headers(server), "DPoP": sign_proofs(key, "POST", token_url, 1).proofs[0]},
        )
        access = check_dpop_tokens(login, key, "authsvc password grant")["access_token"]
        auth = {"Authorization": f"DPoP {access}"}
        for proof in sign_proofs(
            key, "GET", me_url, bench.profile.warmup_requests, access_token=access
        ).proofs:
            response = client.get(me_url, headers={**auth, "DPoP": proof})
            if response.status_code != 200:
                raise RuntimeError(
                    f"authsvc /users/me with DPoP: {response.status_code} {response.text[:200]}"
                )
        refused = client.get(me_url, headers={"Authorization": f"Bearer {access}"})
        if refused.status_code != 401:
            raise RuntimeError(f"authsvc /users/me took a DPoP-bound token as Bearer: {refused.status_code}")
    _measure(
        bench,
        f"{alg}.users_me.dpop",
        f"authsvc GET /users/me, DPoP-bound access token + proof with ath ({alg} proofs)",
        "GET",
        server.proc,
        lambda n: sign_proofs(key, "GET", me_url, n, access_token=access),
        lambda proofs: Load(me_url, headers=auth, proofs=proofs),
        _rate(bench, f"{alg}.users_me"),
        DPOP_SKEW,
        "one bound token (a password login with a proof)",
    )


def authsvc_refresh(bench: Bench, alg: str, server: AuthsvcServer, key: ProofKey) -> None:
    """Rotating refresh with a proof, chained over families of its own (password logins)."""
    import httpx

    url = server.url + "/token"
    form = form_headers(server)
    families = bench.logins(server, bench.pool_size + 2)
    with httpx.Client(timeout=30) as client:
        for family, proof in zip(families[:2], sign_proofs(key, "POST", url, 2).proofs, strict=True):
            body = f"grant_type=refresh_token&refresh_token={family['refresh_token']}"
            check_dpop_tokens(
                client.post(url, content=body, headers={**form, "DPoP": proof}), key, "authsvc refresh"
            )
    pool = [family["refresh_token"] for family in families[2:]]
    chains = _ChainPools(pool, lambda: [f["refresh_token"] for f in bench.logins(server, len(pool))])
    _measure(
        bench,
        f"{alg}.refresh.dpop",
        f"authsvc POST /token refresh_token, rotating, chained, DPoP proof ({alg} proofs)",
        "POST",
        server.proc,
        lambda n: sign_proofs(key, "POST", url, n),
        lambda proofs: Load(url, method="POST", headers=form, chain_tokens=chains.next(), proofs=proofs),
        _rate(bench, f"{alg}.refresh"),
        DPOP_SKEW,
        f"{len(pool)} families of its own chained (a confidential client: the refresh tokens are not "
        "key-bound, each new access token is)",
        chains,
    )


# --- the peer -----------------------------------------------------------------------------------
def peer_client_credentials(bench: Bench, alg: str, proc: Proc, secret: str, key: ProofKey) -> None:
    import httpx

    url = proc.url + "/token"
    auth = form_auth("bench", secret)
    with httpx.Client(timeout=30) as client:
        for proof in sign_proofs(key, "POST", url, bench.profile.warmup_requests).proofs:
            check_dpop_tokens(
                client.post(url, content=_CC_BODY, headers={**auth, "DPoP": proof}),
                key,
                "peer client_credentials",
            )
    _measure(
        bench,
        f"{alg}.peer.client_credentials.dpop",
        f"node-oidc-provider client_credentials, JWT AT via resource indicator, DPoP proof ({alg} proofs)",
        "POST",
        proc,
        lambda n: sign_proofs(key, "POST", url, n),
        lambda proofs: Load(url, method="POST", headers=auth, body=_CC_BODY, proofs=proofs),
        _rate(bench, f"{alg}.peer.client_credentials"),
        DPOP_PEER_SKEW,
        "",
    )


def peer_refresh(bench: Bench, alg: str, proc: Proc, secret: str, key: ProofKey, tokens: list[str]) -> None:
    """Rotating refresh with a proof (client bench-rot-dpop, families of its own)."""
    import httpx

    url = proc.url + "/token"
    auth = form_auth("bench-rot-dpop", secret)
    warm, pool = tokens[:2], tokens[2:]
    chains = _ChainPools(pool, None)  # the peer's families are minted at its start only
    with httpx.Client(timeout=30) as client:
        for token, proof in zip(warm, sign_proofs(key, "POST", url, len(warm)).proofs, strict=True):
            body = f"grant_type=refresh_token&refresh_token={token}"
            check_dpop_tokens(
                client.post(url, content=body, headers={**auth, "DPoP": proof}), key, "peer refresh"
            )
    _measure(
        bench,
        f"{alg}.peer.refresh_rotating.dpop",
        f"node-oidc-provider refresh_token, rotation on, chained, DPoP proof ({alg} proofs)",
        "POST",
        proc,
        lambda n: sign_proofs(key, "POST", url, n),
        lambda proofs: Load(url, method="POST", headers=auth, chain_tokens=chains.next(), proofs=proofs),
        _rate(bench, f"{alg}.peer.refresh_rotating"),
        DPOP_PEER_SKEW,
        f"{len(pool)} families of its own chained",
        chains,
    )


def peer_userinfo(bench: Bench, alg: str, proc: Proc, control_url: str, key: ProofKey) -> None:
    """The peer's protected resource: userinfo (/me; it has no /users/me), bearer then DPoP-bound."""
    import httpx

    def mint(jkt: str | None) -> str:
        response = httpx.post(
            f"{control_url}/bench/access-token", params={"jkt": jkt} if jkt else None, timeout=30
        )
        if response.status_code != 200:
            raise RuntimeError(f"peer /bench/access-token: {response.status_code} {response.text[:300]}")
        return response.text.strip()

    url = proc.url + "/me"
    bearer, bound = mint(None), mint(key.jkt)
    with httpx.Client(timeout=30) as client:
        for _ in range(bench.profile.warmup_requests):
            response = client.get(url, headers={"Authorization": f"Bearer {bearer}"})
            if response.status_code != 200:
                raise RuntimeError(f"peer userinfo: {response.status_code} {response.text[:200]}")
        for proof in sign_proofs(key, "GET", url, bench.profile.warmup_requests, access_token=bound).proofs:
            response = client.get(url, headers={"Authorization": f"DPoP {bound}", "DPoP": proof})
            if response.status_code != 200:
                raise RuntimeError(f"peer userinfo with DPoP: {response.status_code} {response.text[:200]}")
        if client.get(url, headers={"Authorization": f"Bearer {bound}"}).status_code != 401:
            raise RuntimeError("peer userinfo took a DPoP-bound token as Bearer")
    minted = "an opaque access token (scope openid) minted in the peer's process"
    bench.measure(
        f"{alg}.peer.userinfo",
        f"node-oidc-provider GET /me (userinfo), bearer access token ({alg} server)",
        "GET",
        Load(url, headers={"Authorization": f"Bearer {bearer}"}),
        proc=proc,
        ceiling="ceiling.get_bytes",
        note=f"its protected resource in place of /users/me; {minted}",
    )
    _measure(
        bench,
        f"{alg}.peer.userinfo.dpop",
        f"node-oidc-provider GET /me (userinfo), DPoP-bound access token + proof with ath ({alg} proofs)",
        "GET",
        proc,
        lambda n: sign_proofs(key, "GET", url, n, access_token=bound),
        lambda proofs: Load(url, headers={"Authorization": f"DPoP {bound}"}, proofs=proofs),
        _rate(bench, f"{alg}.peer.userinfo"),
        DPOP_PEER_SKEW,
        f"its protected resource in place of /users/me; {minted}, bound to the proof key",
    )
