"""One authsvc server per signing algorithm, primed for its rows: seeded, logged in, warm.

The same server serves the ceilings' inputs (its JWKS body, an access token),
authsvc's rows (the browser sign-in's authorization_code row and sign-in cost
among them) and, for the first algorithm, the event-loop check; it is
stopped before the next server starts: authsvc on PostgreSQL (``--postgres-url``),
then the peer in memory, then the peer on Redis, one at a time on the server core;
last, the refresh rows again, all of those servers side by side and measured in
turn (``refresh_rounds``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from benchkit.console import log
from benchkit.context import Bench
from benchkit.phases import (
    authorization_code,
    authsvc_rows,
    ceilings,
    event_loop,
    peer,
    postgres,
    refresh_rounds,
)
from benchkit.seeding import AuthsvcServer, jwks_etag

__all__ = ["Primed", "primed_server", "run"]


@dataclass
class Primed:
    server: AuthsvcServer
    pool: list[str]  # live, unspent refresh tokens, one per family
    access: str  # a valid access token
    jwks_body: bytes
    etag: str


@contextlib.contextmanager
def primed_server(bench: Bench, alg: str) -> Iterator[Primed]:
    workdir = bench.tmp / f"main-{alg.lower()}"
    proc = bench.start_authsvc(workdir.name, alg, workdir)
    try:
        server = bench.seed(proc, alg, workdir)
        families = bench.logins(server, bench.pool_size + 1)
        access = families[-1]["access_token"]
        pool = bench.warm(server, families[:-1])
        jwks_body, etag = jwks_etag(server)
        yield Primed(server, pool, access, jwks_body, etag)
    finally:
        bench.procs.stop(proc)


def run(bench: Bench, alg: str, first: bool) -> None:
    """The ceilings (shared rows only with the first algorithm), authsvc's rows, the event loop (first
    algorithm), the browser sign-in rows, authsvc's refresh on PostgreSQL, then the peer in memory and on
    Redis, then the refresh rows interleaved."""
    log(f"{alg}: authsvc server, its ceilings{' and the event-loop check' if first else ''}")
    with primed_server(bench, alg) as primed:
        ceilings.run(bench, alg, primed.server, primed.jwks_body, primed.access, first)
        authsvc_rows.run(bench, alg, primed.server, primed.pool, primed.access, primed.etag)
        if first:
            event_loop.run(bench, primed.server)
        authorization_code.run_authsvc(bench, alg, primed.server, count_hashes=first)
    postgres.run(bench, alg)
    if bench.peer_ok:
        peer.run(bench, alg)
        peer.run_redis(bench, alg)
    refresh_rounds.run(bench, alg)
