"""A whole run: the phases in order, what the report says about the run, and the clean-up.

Whatever happens, every process started is stopped and the report gets its
ratios and targets from the rows measured so far (a failed run still reports).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import time

from benchkit.config import ARGON2, AUTH_CODE_TTL
from benchkit.console import log
from benchkit.context import Bench
from benchkit.filler import FillerDb
from benchkit.phases import generator, growth, inproc, memory, peer, per_alg
from benchkit.report import Report, compute_ratios
from benchkit.targets import targets
from benchkit.versions import uvicorn_stack, versions

__all__ = ["run"]


def run(bench: Bench) -> Report:
    started = bench.started = time.time()
    bench.cores.pin_self_to_generator()
    bench.peer_ok, peer_status = peer.available(bench.options)
    bench.peer_redis_url, redis_status = peer.redis_available(bench.options, bench.peer_ok)
    _describe(bench, started, peer_status, redis_status)
    log(f"generator: {bench.generator.describe()}")
    log(f"pinning: {bench.cores.describe()}; peer: {peer_status}; temp dir {bench.tmp}")
    log(f"peer on Redis: {redis_status}; authsvc on PostgreSQL: {bench.report.meta['postgres']}")
    failed = True
    try:
        inproc.run(bench)
        generator.run(bench)
        for index, alg in enumerate(bench.options.algs):
            per_alg.run(bench, alg, first=index == 0)
        growth.run(bench)
        memory.run(bench)
        failed = False
    finally:
        bench.procs.stop_all()
        if bench.options.database_url:
            with contextlib.suppress(Exception):
                FillerDb(bench.options.database_url, bench.filler_prefix).cleanup()
        if failed:
            log(f"run failed: server logs and databases kept in {bench.tmp}")
        elif not bench.options.keep:
            shutil.rmtree(bench.tmp, ignore_errors=True)
        finish(bench, started)
    return bench.report


def finish(bench: Bench, started: float) -> None:
    """Ratios and targets from whatever was measured (a failed run still reports its rows)."""
    compute_ratios(bench.report)
    bench.report.targets = targets(bench.report, bench.options.algs, bench.peer_ok)
    bench.report.meta["elapsed_s"] = round(time.time() - started, 1)


def _describe(bench: Bench, started: float, peer_status: str, redis_status: str) -> None:
    """The run's conditions, printed above the tables."""
    options, profile = bench.options, bench.profile
    bench.report.meta.update(
        {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "mode": "smoke" if options.smoke else "full",
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
            "python": platform.python_version(),
            "pinning": bench.cores.describe(),
            "generator": bench.generator.describe(),
            "generator_name": bench.generator.name,
            "duration_s": profile.duration,
            "connections": profile.connections,
            "database": "PostgreSQL (--database-url; the database server itself is not pinned)"
            if options.database_url
            else "SQLite (a temp dir per server)",
            "argon2": f"argon2id m={ARGON2['memory_kib']} KiB, t={ARGON2['time_cost']}, "
            f"p={ARGON2['parallelism']} (the OWASP minimum, authsvc's default)",
            "refresh_method": (
                f"{bench.pool_size} password logins (one family each), each family refreshed once "
                "in the warm-up, then the generator chains them: every response's refresh token "
                "is queued and posted once; REFRESH_REUSE_GRACE=0"
            ),
            "code_method": (
                "authorization_code: a public client, PKCE S256, scope openid offline_access read write "
                "(access, refresh and ID token on both servers); authsvc's codes minted by GET /authorize "
                "with the SSO cookie of one hosted-page sign-in, the peer's in its own process; each "
                "code redeemed once; more codes than the run can redeem (its refresh rate bounds it)"
            ),
            "server_settings": "authsvc serve, 1 worker, no access log (authsvc serve turns it off), "
            "AUTHSVC_REFRESH_REUSE_GRACE=0, AUTHSVC_LOGIN_MAX_PER_USER and _PER_ADDRESS 1000000 "
            "(the password row's 32 parallel logins of one user), "
            f"AUTHSVC_AUTH_CODE_TTL={AUTH_CODE_TTL} (codes minted before the timed run), "
            "other settings default; " + uvicorn_stack(),
            "peer": peer_status,
            "peer_redis": redis_status,
            # The engine of the main rows (ALG.refresh, ...): targets name it.
            "main_db": "PostgreSQL" if options.database_url else "SQLite",
            "postgres": (
                f"measured (--postgres-url {peer.redact(options.postgres_url)}: one more authsvc server "
                "per alg, rows ALG.pg.refresh; the database server itself is not pinned)"
                if options.postgres_url
                else "not measured (no --postgres-url)"
            ),
            "versions": versions(),
        }
    )
