"""authsvc's refresh row on PostgreSQL (``--postgres-url``): one more authsvc server per alg on that database.

The main rows run on SQLite (or on ``--database-url``); this server, set up the same
way (a user and a client through the CLI, ``pool_size`` password logins, each family
refreshed once), measures only the rotating, chained refresh (``ALG.pg.refresh``) and
its latency percentiles, so that issue 18's targets compare both engines with the peer
in the same run. The PostgreSQL server itself is not pinned: its backend processes
share the cores with the generator and authsvc. The bench's users, clients and refresh
tokens stay in that database (names carry the run's id), like ``--database-url``'s.
"""

from __future__ import annotations

from benchkit.console import log
from benchkit.context import Bench
from benchkit.load import Load
from benchkit.seeding import form_headers

__all__ = ["run"]


def run(bench: Bench, alg: str) -> None:
    url = bench.options.postgres_url
    if url is None:
        return
    log(f"{alg}: authsvc server on PostgreSQL (--postgres-url): refresh")
    workdir = bench.tmp / f"pg-{alg.lower()}"
    proc = bench.start_authsvc(workdir.name, alg, workdir, database_url=url)
    try:
        server = bench.seed(proc, alg, workdir, database_url=url)
        pool = bench.warm(server, bench.logins(server, bench.pool_size))
        bench.measure(
            f"{alg}.pg.refresh",
            f"authsvc POST /token refresh_token, rotating, chained, on PostgreSQL ({alg})",
            "POST",
            Load(proc.url + "/token", method="POST", headers=form_headers(server), chain_tokens=pool),
            proc=proc,
            ceiling="ceiling.post_raw",
            note=f"{len(pool)} families chained; PostgreSQL not pinned",
        )
    finally:
        bench.procs.stop(proc)
