"""Growth: refresh latency with few and with many live refresh-token rows in the table.

The rows are filler (``benchkit.filler``) inserted while the server is stopped;
the server is restarted for each size, and logs in and warms up afresh.
"""

from __future__ import annotations

import json
import time

from benchkit.console import log
from benchkit.context import Bench
from benchkit.filler import FillerDb
from benchkit.load import Load
from benchkit.seeding import form_headers, jwks_etag

__all__ = ["run"]


def run(bench: Bench) -> None:
    alg = bench.options.growth_alg
    small, big = bench.profile.growth_small, bench.options.growth_rows or bench.profile.growth_big
    log(f"growth ({alg}): refresh latency with {small:,} and with {big:,} live refresh-token rows")
    workdir = bench.tmp / "growth"
    proc = bench.start_authsvc("growth", alg, workdir)
    try:
        server = bench.seed(proc, alg, workdir)
        kid = json.loads(jwks_etag(server)[0])["keys"][0]["kid"]
    finally:
        bench.procs.stop(proc)
    db = FillerDb(server.env["AUTHSVC_DATABASE_URL"], bench.filler_prefix)
    try:
        for size, row_id in ((small, "growth.refresh_small"), (big, "growth.refresh_big")):
            t0 = time.monotonic()
            added = db.fill_to(size, server.username, server.client_id, kid)
            log(f"  inserted {added:,} filler rows in {time.monotonic() - t0:.1f}s (table now {size:,}+)")
            proc = bench.start_authsvc("growth", alg, workdir)
            server.proc = proc
            try:
                pool = bench.warm(server, bench.logins(server, bench.pool_size))
                bench.measure(
                    row_id,
                    f"authsvc refresh ({alg}) with {size:,} live refresh-token rows",
                    "POST",
                    Load(proc.url + "/token", method="POST", headers=form_headers(server), chain_tokens=pool),
                    proc=proc,
                    ceiling="ceiling.post_raw",
                    note=f"{size:,} filler rows + the run's own",
                )
            finally:
                bench.procs.stop(proc)
    finally:
        db.close()
    bench.report.meta["growth_rows"] = {"small": small, "big": big, "alg": alg}
