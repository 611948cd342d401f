"""The command line of ``scripts/bench.py``: options, the run, and where the results go."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

import benchkit
from benchkit.config import ALGS, PEER_REDIS_URL, ROOT, Options, profile_for
from benchkit.console import log
from benchkit.context import Bench
from benchkit.output import markdown, write_outputs
from benchkit.runner import run
from benchkit.servers import authsvc_env, run_cli

__all__ = ["main", "parse_args"]


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(description=(benchkit.__doc__ or "").split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="Tiny durations and counts; every code path.")
    parser.add_argument("--out", type=Path, help="Directory for bench.md and bench.json.")
    parser.add_argument("--database-url", help="PostgreSQL scratch database (default: SQLite in a temp dir).")
    parser.add_argument(
        "--postgres-url",
        help="PostgreSQL scratch database of one more authsvc server per alg: its refresh row "
        "(ALG.pg.refresh) beside the main one (default: not measured).",
    )
    parser.add_argument(
        "--redis-url",
        default=PEER_REDIS_URL,
        help="Redis of the peer's Redis adapter (rows ALG.peer_redis.*; its keys under a prefix of the "
        f"run's, deleted at the peer's start and exit; default {PEER_REDIS_URL}).",
    )
    parser.add_argument("--no-redis", action="store_true", help="Do not measure the peer on Redis.")
    parser.add_argument("--generator", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument("--duration", type=float, help="Seconds per load run (default 3; smoke 0.3).")
    parser.add_argument("--connections", type=int, help="Concurrent connections (default 32; smoke 4).")
    parser.add_argument("--algs", default=",".join(ALGS), help="Comma-separated: RS256,EdDSA.")
    parser.add_argument("--growth-rows", type=int, help="Live refresh-token rows of the big growth run.")
    parser.add_argument("--growth-alg", default="EdDSA", choices=ALGS, help="Server alg of growth/memory.")
    parser.add_argument("--memory-refreshes", type=int, help="Refreshes before the second RSS reading.")
    parser.add_argument(
        "--memory-seconds",
        type=int,
        help="Time budget of each memory run: the RSS is taken at the count or then "
        "(default: what keeps the whole run near 4.5 minutes, 30 to 150 s).",
    )
    parser.add_argument("--no-peer", action="store_true", help="Do not measure node-oidc-provider.")
    parser.add_argument("--keep", action="store_true", help="Keep the temp dir (logs, databases).")
    args = parser.parse_args(argv)
    algs = tuple(a.strip() for a in args.algs.split(",") if a.strip())
    if not algs or any(a not in ALGS for a in algs):
        parser.error(f"--algs takes a subset of {','.join(ALGS)}")
    if args.database_url and not args.database_url.startswith(("postgresql", "postgres")):
        parser.error("--database-url takes a postgresql:// URL (SQLite is the default)")
    if args.postgres_url and not args.postgres_url.startswith(("postgresql", "postgres")):
        parser.error("--postgres-url takes a postgresql:// URL")
    if not args.redis_url.startswith(("redis://", "rediss://", "unix://")):
        parser.error("--redis-url takes a redis:// URL")
    return Options(
        smoke=args.smoke,
        out=args.out,
        database_url=args.database_url,
        postgres_url=args.postgres_url,
        redis_url=None if args.no_redis else args.redis_url,
        generator=args.generator,
        duration=args.duration,
        connections=args.connections,
        algs=algs,
        growth_rows=args.growth_rows,
        growth_alg=args.growth_alg,
        memory_refreshes=args.memory_refreshes,
        memory_seconds=args.memory_seconds,
        no_peer=args.no_peer,
        keep=args.keep,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["_static"], ["_bare"]):  # a ceiling process of a run (benchkit.servers)
        from benchkit.ceiling_apps import serve_bare, serve_static

        if argv[0] == "_static":
            serve_static(int(argv[1]))
        else:
            serve_bare(int(argv[1]), argv[2])
        return 0
    options = parse_args(argv)
    out_dir = options.out or ROOT / "bench-results" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    for url in {options.database_url, options.postgres_url} - {None}:
        scratch = Path(tempfile.gettempdir())
        run_cli(authsvc_env(scratch, "RS256", url), scratch, "db", "upgrade")
    bench = Bench(options, profile_for(options))
    try:
        report = run(bench)
    except BaseException as exc:
        bench.report.meta["incomplete"] = f"{type(exc).__name__}: {exc}"[:1000]
        json_path, md_path = write_outputs(bench.report, out_dir)
        log(f"incomplete run; partial results in {md_path} and {json_path}")
        raise
    json_path, md_path = write_outputs(report, out_dir)
    print()
    print(markdown(report))
    log(f"wrote {md_path} and {json_path}; total {report.meta['elapsed_s']} s")
    return 0
