"""The load generator's own ceiling: a GET and the chained refresh POST script against a static responder.

Rows whose rate the generator cannot separate from this ceiling are marked
generator-bound (``benchkit.report.compute_ratios``).
"""

from __future__ import annotations

from benchkit.console import log
from benchkit.context import Bench
from benchkit.load import Load
from benchkit.servers import start_static

__all__ = ["run"]


def run(bench: Bench) -> None:
    log(f"generator ceiling: {bench.generator.name} against a static responder (raw asyncio)")
    workdir = bench.tmp / "static"
    workdir.mkdir()
    proc = start_static(bench.procs, bench.cores, workdir)
    try:
        bench.measure("generator.get", "generator ceiling: GET, static responder", "GET", Load(proc.url))
        chain = ["x" * 400] * bench.pool_size
        bench.measure(
            "generator.post",
            "generator ceiling: chained refresh POST script, static responder",
            "POST",
            Load(
                proc.url + "/token",
                method="POST",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                chain_tokens=chain,
            ),
        )
    finally:
        bench.procs.stop(proc)
