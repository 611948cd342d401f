#!/usr/bin/env python
"""Count the instructions an authsvc refresh costs, under valgrind's callgrind: an A/B that noise
cannot move.

    python scripts/bench_instructions.py --alg EdDSA --requests 600     # needs Debian's valgrind

Wall-clock and CPU-time A/B runs on the machines here spread by 20 % or more with the code
unchanged, which hides the 1-5 % a change to the request path is worth. callgrind counts the
instructions the server process executes, which repeat run to run: this script starts
``authsvc serve`` under callgrind with instrumentation off (the import and the start-up are not
counted), seeds and logs in as ``scripts/bench.py`` does, warms the server, then counts a fixed
number of chained refreshes (every response's refresh token is posted next) at a fixed
concurrency, and prints instructions per refresh and the functions that ran most of them. It counts
instructions, not time: a system call or an fsync is one instruction however long the kernel
takes, so it judges changes to Python and library work, not to I/O. Run each arm twice, one run at a
time: two runs of the same code agree within 0.5 %, but runs side by side moved the count by 3 %
(group commit's batches follow the timing).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
from benchkit.cli import parse_args
from benchkit.config import ALGS, FULL
from benchkit.context import Bench
from benchkit.seeding import form_headers
from benchkit.servers import run_cli


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alg", choices=ALGS, default="EdDSA")
    parser.add_argument("--requests", type=int, default=600, help="Refreshes counted.")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warm", type=int, default=200, help="Refreshes before the count starts.")
    parser.add_argument("--database-url", help="PostgreSQL scratch database (default: SQLite).")
    args = parser.parse_args()

    runner = Bench(parse_args(["--no-peer"]), FULL)
    runner.cores.pin_self_to_generator()
    workdir = Path(tempfile.mkdtemp(prefix="authsvc-instructions-"))
    if args.database_url:  # the schema, as scripts/bench.py brings it up to date
        env = runner.authsvc_env(args.alg, workdir, database_url=args.database_url)
        run_cli(env, workdir, "db", "upgrade")
    out = workdir / "callgrind.out"  # the dumps: callgrind.out.1 (asked for) and callgrind.out (at exit)
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    try:
        # Inside the try: a server that never answers /healthz is stopped too.
        proc = runner.start_authsvc(
            "counted", args.alg, workdir, database_url=args.database_url, wrapper=valgrind, timeout=600
        )
        server = runner.seed(proc, args.alg, workdir, database_url=args.database_url)
        families = runner.logins(server, args.connections)
        control = ["callgrind_control", "--instr=on", str(proc.pid)]
        subprocess.run(control, check=True, capture_output=True)
        tokens = [f["refresh_token"] for f in families]
        tokens = asyncio.run(_chain(server.url, form_headers(server), tokens, args.warm))
        subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True, capture_output=True)
        asyncio.run(_chain(server.url, form_headers(server), tokens, args.requests))
        subprocess.run(["callgrind_control", "--dump", str(proc.pid)], check=True, capture_output=True)
    finally:
        runner.procs.stop_all()
    # The dump asked for above; the one at exit ("Trigger: Program termination") is the shutdown's.
    dump = next((p for p in workdir.glob("callgrind.out*") if "Trigger: dump" in p.read_text()), None)
    total = _total(dump) if dump is not None else None
    if dump is None or total is None:
        print(f"no dump found in {workdir}", file=sys.stderr)
        return 1
    each = total / args.requests
    print(f"{args.alg} refresh: {each:,.0f} instructions a refresh ({args.requests} counted,")
    print(f"  {args.connections} connections, {total:,} in all); dump: {dump}")
    for name, share in _top_functions(dump, total):
        print(f"  {100 * share:5.1f} %  {name}")
    return 0


async def _chain(url: str, headers: dict[str, str], tokens: list[str], requests: int) -> list[str]:
    """``requests`` refreshes, each family's next one sent with the token its last one returned."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for token in tokens:
        queue.put_nowait(token)
    left = requests
    limits = httpx.Limits(max_connections=len(tokens), max_keepalive_connections=len(tokens))
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                token = await queue.get()
                body = f"grant_type=refresh_token&refresh_token={token}"
                response = await client.post("/token", content=body, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"refresh: {response.status_code} {response.text[:200]}")
                queue.put_nowait(response.json()["refresh_token"])

        await asyncio.gather(*(worker() for _ in range(len(tokens))))
    return [queue.get_nowait() for _ in range(queue.qsize())]


def _total(dump: Path) -> int | None:
    match = re.search(r"^summary: (\d+)", dump.read_text(errors="replace"), re.M)
    return int(match.group(1)) if match else None


def _top_functions(dump: Path, total: int) -> list[tuple[str, float]]:
    """The functions that ran the most instructions themselves (``callgrind_annotate``). Python
    code shows as the interpreter's functions: py-spy (``bench_profile.py``) names the Python."""
    done = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--threshold=100", str(dump)],
        capture_output=True,
        text=True,
        check=False,
    )
    top: list[tuple[str, float]] = []
    for line in done.stdout.splitlines():
        match = re.match(r"\s*([\d,]+) \([^)]*\)\s+\S*?:(\S+) \[(.+)\]$", line)
        if not match or match.group(2) in _THREAD_ENTRIES:
            continue
        count = int(match.group(1).replace(",", ""))
        top.append((f"{match.group(2)} ({Path(match.group(3)).name})", count / total))
        if len(top) == 15:
            break
    return top


# Thread entry points, which callgrind_annotate charges with their threads' whole cost.
_THREAD_ENTRIES = frozenset({"start_thread", "thread_run", "clone", "pythread_wrapper"})


if __name__ == "__main__":
    raise SystemExit(main())
