"""authsvc's own rows on a primed server: JWKS 200 and 304, client_credentials, /users/me, refresh, password.

GET rows are compared with the bare constant-bytes GET, POST rows with the bare
raw-body POST; the password grant with one in-process argon2 hash. Each of
client_credentials, /users/me and refresh is followed by its DPoP row
(``benchkit.phases.dpop``: proofs signed with the row's algorithm).
"""

from __future__ import annotations

from benchkit.config import ARGON2
from benchkit.context import Bench
from benchkit.dpop_proofs import new_proof_key
from benchkit.load import Load
from benchkit.phases import dpop
from benchkit.seeding import AuthsvcServer, form_headers, login_body

__all__ = ["run"]


def run(bench: Bench, alg: str, server: AuthsvcServer, pool: list[str], access: str, etag: str) -> None:
    proc = server.proc
    form = form_headers(server)
    key = new_proof_key(alg)  # the DPoP rows' client key, proofs of the row's algorithm
    bench.measure(
        f"{alg}.jwks",
        f"authsvc GET /.well-known/jwks.json 200 ({alg})",
        "GET",
        Load(proc.url + "/.well-known/jwks.json"),
        proc=proc,
        ceiling="ceiling.get_bytes",
    )
    bench.measure(
        f"{alg}.jwks_304",
        f"authsvc GET /.well-known/jwks.json 304, If-None-Match ({alg})",
        "GET",
        Load(proc.url + "/.well-known/jwks.json", headers={"If-None-Match": etag}),
        proc=proc,
        ceiling="ceiling.get_bytes",
    )
    bench.measure(
        f"{alg}.client_credentials",
        f"authsvc POST /token client_credentials, client_secret_basic ({alg})",
        "POST",
        Load(
            proc.url + "/token",
            method="POST",
            headers=form,
            body="grant_type=client_credentials&scope=read%20write",
        ),
        proc=proc,
        ceiling="ceiling.post_raw",
    )
    dpop.authsvc_client_credentials(bench, alg, server, key)
    bench.measure(
        f"{alg}.users_me",
        f"authsvc GET /users/me, valid access token ({alg})",
        "GET",
        Load(proc.url + "/users/me", headers={"Authorization": f"Bearer {access}"}),
        proc=proc,
        ceiling="ceiling.get_bytes",
    )
    dpop.authsvc_users_me(bench, alg, server, key)
    bench.measure(
        f"{alg}.refresh",
        f"authsvc POST /token refresh_token, rotating, chained ({alg})",
        "POST",
        Load(proc.url + "/token", method="POST", headers=form, chain_tokens=pool),
        proc=proc,
        ceiling="ceiling.post_raw",
        note=f"{len(pool)} families chained",
    )
    dpop.authsvc_refresh(bench, alg, server, key)
    bench.measure(
        f"{alg}.password",
        f"authsvc POST /token password grant, argon2id m={ARGON2['memory_kib']} "
        f"t={ARGON2['time_cost']} p={ARGON2['parallelism']} ({alg})",
        "POST",
        Load(proc.url + "/token", method="POST", headers=form, body=login_body(server)),
        proc=proc,
        ceiling="argon2.hash",
        note="argon2-bound: ceiling is one in-process hash (1 ÷ hash time)",
    )
