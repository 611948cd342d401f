"""Memory: the server's RSS after few and after many refreshes, each run capped by a time budget.

The second figure says how many refreshes fit in the budget when the count is
not reached; by default the budget keeps the whole run near ``RUN_BUDGET_S``.
"""

from __future__ import annotations

import time
from typing import Any

from benchkit.config import RUN_BUDGET_S
from benchkit.console import log
from benchkit.context import Bench
from benchkit.load import Load
from benchkit.report import Row, join_notes
from benchkit.seeding import form_headers

__all__ = ["run"]


def run(bench: Bench) -> None:
    alg = bench.options.growth_alg
    small = bench.profile.memory_small
    big = bench.options.memory_refreshes or bench.profile.memory_big
    budget = bench.options.memory_seconds or _budget(bench)
    log(f"memory ({alg}): server RSS after {small:,} and after {big:,} refreshes (≤ {budget} s each)")
    workdir = bench.tmp / "memory"
    proc = bench.start_authsvc("memory", alg, workdir)
    counts: dict[str, Any] = {"small": small, "big": big, "alg": alg, "seconds_budget": budget}
    try:
        server = bench.seed(proc, alg, workdir)
        pools = bench.warm(server, bench.logins(server, 2 * bench.pool_size))
        done = len(pools)  # the warm-up refreshed each family once
        first, second = pools[: bench.pool_size], pools[bench.pool_size :]
        for key, row_id, goal, pool in (
            ("done_small", "memory.after_small", small, first),
            ("done_big", "memory.after_big", big, second),
        ):
            # The run stops at the count, or at the time budget, whichever comes first.
            result = bench.generator.run(
                Load(
                    proc.url + "/token",
                    method="POST",
                    headers=form_headers(server),
                    chain_tokens=pool,
                    max_requests=max(1, goal - done),
                ),
                duration=budget,
            )
            done += result.requests - result.errors
            counts[key] = done
            time.sleep(0.3)
            bench.report.add(
                Row(
                    row_id,
                    f"authsvc RSS after {done:,} refreshes ({alg})",
                    "info",
                    rps=result.rps,
                    p50_ms=result.p50_ms,
                    p99_ms=result.p99_ms,
                    requests=result.requests,
                    errors=result.errors,
                    rss_mib=proc.rss(),
                    generator=bench.generator.name,
                    note=join_notes(
                        "RSS is the figure (req/s for information)",
                        f"{goal:,} asked, time budget reached" if done < goal else "",
                        f"errors: {result.error_detail}" if result.errors else "",
                    ),
                )
            )
    finally:
        bench.procs.stop(proc)
        bench.report.meta["memory_refreshes"] = counts


def _budget(bench: Bench) -> int:
    """Seconds per memory run that keep the whole run near RUN_BUDGET_S (30 to 150)."""
    if bench.options.smoke:
        return 60  # smoke counts are tiny: the count, not the clock, ends the runs
    left = RUN_BUDGET_S - (time.time() - bench.started) - 20  # set-up, logins, the small run
    return int(min(150, max(30, left)))
