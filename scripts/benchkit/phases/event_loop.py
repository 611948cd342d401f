"""Event-loop health: JWKS p99 alone (the JWKS row) and while password logins (argon2) run.

A blocked loop would show as a JWKS p99 of the order of the hash time; authsvc
hashes in worker threads, so it should stay well under two hashes.
"""

from __future__ import annotations

import asyncio
import threading
import time

from benchkit.console import log
from benchkit.context import Bench
from benchkit.load import Load
from benchkit.report import Row
from benchkit.seeding import AuthsvcServer, form_headers, login_body

__all__ = ["run"]


def run(bench: Bench, server: AuthsvcServer) -> None:
    log("event loop: JWKS p99 while password logins run")
    alone = bench.report.get(f"{server.alg}.jwks")
    assert alone is not None
    bench.report.add(
        Row(
            "eventloop.jwks_alone",
            "JWKS p99, nothing else running (the JWKS row)",
            "GET",
            rps=alone.rps,
            p50_ms=alone.p50_ms,
            p99_ms=alone.p99_ms,
            requests=alone.requests,
            errors=alone.errors,
            generator=alone.generator,
        )
    )
    stop = threading.Event()
    counts = {"ok": 0, "failed": 0}
    concurrent = bench.profile.logins_concurrent
    thread = threading.Thread(
        target=lambda: asyncio.run(_login_loops(server, concurrent, stop, counts)), daemon=True
    )
    thread.start()
    try:
        time.sleep(0.3)
        row = bench.measure(
            "eventloop.jwks_with_logins",
            f"JWKS p99 while {concurrent} password logins run concurrently",
            "GET",
            Load(server.url + "/.well-known/jwks.json"),
            proc=server.proc,
            ceiling="ceiling.get_bytes",
        )
    finally:
        stop.set()
        thread.join(timeout=60)
    row.note = f"{counts['ok']} logins done meanwhile" + (
        f", {counts['failed']} failed" if counts["failed"] else ""
    )


async def _login_loops(
    server: AuthsvcServer, concurrent: int, stop: threading.Event, counts: dict[str, int]
) -> None:
    import httpx

    headers = form_headers(server)
    body = login_body(server)
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:

        async def loop() -> None:
            for _ in range(100_000):
                if stop.is_set():
                    return
                try:
                    response = await client.post("/token", content=body, headers=headers)
                    counts["ok" if response.status_code == 200 else "failed"] += 1
                except httpx.HTTPError:
                    counts["failed"] += 1
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(loop() for _ in range(concurrent)))
