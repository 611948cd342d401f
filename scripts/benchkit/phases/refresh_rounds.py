"""Issue 18's refresh comparison, interleaved: an alg's refresh servers measured in turn, round after round.

The rows of the other phases are measured one server at a time, minutes apart,
and the machine here drifts: in two runs of the same code the peer on Redis
went from 2,990 to 2,052 refreshes/s, which moves a ratio more than any change
to authsvc did. Here authsvc (on the run's database), authsvc on PostgreSQL
(``--postgres-url``), the peer in memory and the peer on Redis run side by
side, all pinned to the server core and idle but for the one under load; each
round loads them one after another, seconds apart, with chains of fresh
families, after one unrecorded round that warms them all. Each row
(``ALG.rounds.*``) is the median of its rounds (req/s, p50 and p99 each), and
issue 18's refresh targets and table compare these when they are there.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from benchkit.console import log
from benchkit.context import Bench
from benchkit.load import Load, LoadResult
from benchkit.phases import peer
from benchkit.report import Row
from benchkit.seeding import AuthsvcServer, form_headers
from benchkit.servers import Proc, form_auth
from benchkit.targets import rounds_row

__all__ = ["rounds_for", "run"]

#: The unrecorded first round, in load runs: node-oidc-provider's refresh rate still climbed
#: round after round (1,907 -> 2,202 -> 2,459/s) after a one-second warm-up (V8's JIT).
WARMUP_RUNS = 3


def rounds_for(smoke: bool) -> int:
    return 1 if smoke else 3


@dataclass
class _Server:
    row: str  # its row is rounds_row(alg, row): ALG.rounds.refresh, ALG.rounds.peer.refresh_rotating, ...
    label: str
    proc: Proc
    next_load: Callable[[], Load]  # a chained load with fresh families
    results: list[LoadResult] = field(default_factory=list)


def _authsvc(bench: Bench, alg: str, name: str, database_url: str | None) -> tuple[Proc, AuthsvcServer]:
    workdir = bench.tmp / f"{name}-{alg.lower()}"
    proc = bench.start_authsvc(workdir.name, alg, workdir, database_url=database_url)
    return proc, bench.seed(proc, alg, workdir, database_url=database_url)


def _authsvc_load(bench: Bench, proc: Proc, server: AuthsvcServer) -> Callable[[], Load]:
    def fresh() -> Load:
        pool = bench.warm(server, bench.logins(server, bench.pool_size))
        return Load(proc.url + "/token", method="POST", headers=form_headers(server), chain_tokens=pool)

    return fresh


def _peer_load(proc: Proc, secret: str, chains: list[str], size: int) -> Callable[[], Load]:
    headers = form_auth("bench-rot", secret)
    left = list(chains)

    def fresh() -> Load:
        pool, left[:] = left[:size], left[size:]
        if len(pool) < size:
            raise RuntimeError("the peer's refresh tokens ran out")
        return Load(proc.url + "/token", method="POST", headers=headers, chain_tokens=pool)

    return fresh


def run(bench: Bench, alg: str) -> None:
    rounds = rounds_for(bench.options.smoke)
    log(f"{alg}: refresh, interleaved: {rounds} rounds over authsvc and the peer, side by side")
    main_db = str(bench.report.meta.get("main_db", "SQLite"))
    servers: list[_Server] = []
    with contextlib.ExitStack() as stack:
        proc, server = _authsvc(bench, alg, "rounds", None)
        stack.callback(bench.procs.stop, proc)
        servers.append(_Server("refresh", f"authsvc, {main_db}", proc, _authsvc_load(bench, proc, server)))
        if bench.options.postgres_url and main_db != "PostgreSQL":
            proc, server = _authsvc(bench, alg, "rounds-pg", bench.options.postgres_url)
            stack.callback(bench.procs.stop, proc)
            servers.append(
                _Server("pg.refresh", "authsvc, PostgreSQL", proc, _authsvc_load(bench, proc, server))
            )
        pool = bench.pool_size * (rounds + 1)  # a chain of fresh families per round and the warm-up
        peers: list[tuple[str, str, str | None]] = (
            [("peer", "node-oidc-provider, in memory", None)] if bench.peer_ok else []
        )
        if bench.peer_ok and bench.peer_redis_url is not None:
            peers.append(("peer_redis", "node-oidc-provider, Redis", bench.peer_redis_url))
        for name, label, redis_url in peers:
            proc, secret, tokens_file, _ = peer.start(bench, alg, f"rounds-{name}", redis_url, pool=pool)
            stack.callback(bench.procs.stop, proc)
            chains = _peer_load(proc, secret, peer.tokens(tokens_file, "bench-rot"), bench.pool_size)
            servers.append(_Server(f"{name}.refresh_rotating", label, proc, chains))
        for server_ in servers:  # warm-up round: JITs, caches, connection pools; not recorded
            bench.generator.run(server_.next_load(), WARMUP_RUNS * bench.profile.duration)
        for _ in range(rounds):
            for server_ in servers:
                server_.results.append(bench.generator.run(server_.next_load(), bench.profile.duration))
        for server_ in servers:
            _report(bench, alg, server_)


def _report(bench: Bench, alg: str, server: _Server) -> None:
    results = server.results
    rates = [r.rps for r in results]
    bench.report.add(
        Row(
            id=rounds_row(alg, server.row),
            label=f"{server.label}: refresh, rotating, chained, median of {len(results)} "
            f"interleaved rounds ({alg})",
            kind="POST",
            rps=statistics.median(rates),
            p50_ms=statistics.median(r.p50_ms for r in results),
            p99_ms=statistics.median(r.p99_ms for r in results),
            requests=sum(r.requests for r in results),
            errors=sum(r.errors for r in results),
            ceiling="ceiling.post_raw",
            rss_mib=server.proc.rss(),
            generator=bench.generator.name,
            note="rounds: " + ", ".join(f"{rate:,.0f}" for rate in rates) + " req/s",
        )
    )
