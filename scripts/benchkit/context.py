"""What every phase of a run shares (the ``Bench``), and the one way a load run becomes a row."""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchkit import seeding
from benchkit.config import Options, Profile
from benchkit.cores import Cores
from benchkit.load import Generator, Load, pick_generator
from benchkit.report import Report, Row, join_notes
from benchkit.seeding import AuthsvcServer
from benchkit.servers import Proc, Procs, authsvc_env, cpu_seconds, start_authsvc

__all__ = ["Bench"]


class Bench:
    """Options, profile, cores, the processes started, the generator and the report of one run."""

    def __init__(self, options: Options, profile: Profile) -> None:
        self.options = options
        self.profile = profile
        self.cores = Cores()
        self.procs = Procs()
        self.report = Report()
        self.tmp = Path(tempfile.mkdtemp(prefix="authsvc-bench-"))
        self.run_id = secrets.token_hex(4)
        self.generator: Generator = pick_generator(
            options.generator,
            smoke=options.smoke,
            cores=self.cores,
            connections=profile.connections,
            workdir=self.tmp,
        )
        self.pool_size = profile.connections + 16  # refresh-token families chained per load run
        self.filler_prefix = f"s_fill_{self.run_id}_"
        self.peer_ok = False
        # The peer's Redis (node-oidc-provider with its Redis adapter) when this run measures it.
        self.peer_redis_url: str | None = None
        self.started = time.time()

    def measure(
        self,
        row_id: str,
        label: str,
        kind: str,
        load: Load,
        *,
        proc: Proc | None = None,
        ceiling: str | None = None,
        duration: float | None = None,
        note: str = "",
    ) -> Row:
        """One load run, reported as a row (with the server's RSS after it and its CPU per request)."""
        cpu_before = cpu_seconds(proc.pid) if proc else None
        result = self.generator.run(load, duration or self.profile.duration)
        cpu_after = cpu_seconds(proc.pid) if proc else None
        cpu_ms = None
        if cpu_before is not None and cpu_after is not None and result.requests:
            cpu_ms = (cpu_after - cpu_before) * 1000 / result.requests
        row = Row(
            id=row_id,
            label=label,
            kind=kind,
            rps=result.rps,
            p50_ms=result.p50_ms,
            p99_ms=result.p99_ms,
            requests=result.requests,
            errors=result.errors,
            ceiling=ceiling,
            rss_mib=proc.rss() if proc else None,
            cpu_ms=cpu_ms,
            generator=self.generator.name,
            note=join_notes(note, f"errors: {result.error_detail}" if result.errors else ""),
        )
        return self.report.add(row)

    # --- authsvc, set up the same way for every phase (and for scripts/bench_profile.py) ---------
    def authsvc_env(
        self,
        alg: str,
        workdir: Path,
        argon2: dict[str, int] | None = None,
        database_url: str | None = None,
    ) -> dict[str, str]:
        """``database_url``: another database than the run's (``--database-url``, else SQLite)."""
        return authsvc_env(workdir, alg, database_url or self.options.database_url, argon2=argon2)

    def start_authsvc(
        self,
        name: str,
        alg: str,
        workdir: Path | None = None,
        argon2: dict[str, int] | None = None,
        database_url: str | None = None,
        *,
        wrapper: Sequence[str] = (),
        timeout: float = 60,
    ) -> Proc:
        """``argon2``: hashing parameters other than the shipped ones (``config.ARGON2``);
        ``wrapper`` and ``timeout``: as ``servers.start_authsvc``."""
        workdir = workdir or (self.tmp / name)
        workdir.mkdir(parents=True, exist_ok=True)
        env = self.authsvc_env(alg, workdir, argon2, database_url)
        return start_authsvc(self.procs, self.cores, name, env, workdir, wrapper=wrapper, timeout=timeout)

    def seed(
        self,
        proc: Proc,
        alg: str,
        workdir: Path,
        argon2: dict[str, int] | None = None,
        database_url: str | None = None,
    ) -> AuthsvcServer:
        env = self.authsvc_env(alg, workdir, argon2, database_url)
        return seeding.seed(proc, alg, workdir, env, self.run_id)

    def logins(self, server: AuthsvcServer, count: int) -> list[dict[str, Any]]:
        return seeding.logins(server, count)

    def warm(self, server: AuthsvcServer, families: list[dict[str, Any]]) -> list[str]:
        return seeding.warm(server, families, self.profile.warmup_requests)
