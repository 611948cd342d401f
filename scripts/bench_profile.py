#!/usr/bin/env python
"""Profile one authsvc row of the bench under load: where does a refresh's time go?

    pip install py-spy                       # not a project dependency
    python scripts/bench_profile.py --alg EdDSA --grant refresh_token
    python scripts/bench_profile.py --alg RS256 --tool perf    # native split: Python / crypto / kernel
    python scripts/bench_profile.py --alg EdDSA --grant dpop_client_credentials  # a DPoP row (also
                                              # dpop_refresh_token, dpop_users_me): proofs signed ahead
    python scripts/bench_profile.py --alg EdDSA --grant authorization_code  # codes minted ahead

Starts authsvc exactly as ``scripts/bench.py`` does, through its package
``benchkit`` (same pinning, seeding, logins and chained refresh tokens, same
generator), then records the server
while the generator runs, and prints what share of the busy samples each part
of the request holds (py-spy: every thread's stack, idle waits left out) or,
with ``--tool perf``, the share of CPU per shared object (``perf report``).
Sampling slows the server; the req/s printed beside the profile is lower than
the bench's.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from benchkit.browser import code_body, mint_codes, seed_spa_client, sign_in
from benchkit.cli import parse_args
from benchkit.config import ALGS, FULL
from benchkit.context import Bench
from benchkit.dpop_proofs import new_proof_key, sign_proofs
from benchkit.load import Load
from benchkit.seeding import AuthsvcServer, form_headers, login_body
from benchkit.servers import authsvc_env, cpu_seconds, run_cli

#: Requests/s no DPoP row reaches on one core: the proofs signed ahead are this x the seconds.
_DPOP_RATE_BOUND = 4000
#: Code redemptions/s no run reaches on one core (about a refresh's rate): the codes minted ahead are
#: this x the seconds.
_CODE_RATE_BOUND = 2500
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}

# Leaves where a thread waits rather than works: uvloop's epoll, an idle executor thread.
_IDLE_LEAVES = (
    "Runner.run (asyncio/runners.py:118)",
    "_worker (concurrent/futures/thread.py:81)",
    "_worker (concurrent/futures/thread.py:90)",
    "_connection_worker_thread (aiosqlite/core.py:59)",
    "_connection_worker_thread (aiosqlite/core.py:61)",
)
# Steps of a request, by a frame their samples pass through (inclusive; "of it" rows nest).
STEPS = {
    "check the presented refresh token": "check_token (authsvc/tokens/validation.py",
    "database transaction, on its worker thread": "ThreadedDatabase._begin",
    "  of it: SQLAlchemy Connection.execute": "Connection.execute (sqlalchemy",
    "  of it: commit": "do_commit",
    "  of it: signing the new tokens": "TokenIssuer.session_tokens",
    "sign an access token (client_credentials)": "client_credentials.py",
    "form parsing": "read_form",
    "client authentication": "ClientAuthenticator.authenticate",
    "audit log line": "audit_log (authsvc/events.py",
    "DPoP: DpopGate.proof (the proof checked, then its jti recorded)": "DpopGate.proof (authsvc/dpop_gate.py",
    "  of it: check_proof (authsvc/dpop.py)": "check_proof (authsvc/dpop.py",
    "    of it: signature (joserfc validate_compact)": "validate_compact (joserfc",
    "    of it: the proof's JWK imported": "import_key (joserfc",
    "    of it: its thumbprint": "thumbprint (joserfc",
    "  of it: jti recorded, event-loop side (SqlClientStore.use_assertion)": "use_assertion (authsvc",
    "aiosqlite's thread (AsyncEngine SQL: the jti write)": "_connection_worker_thread (aiosqlite",
}
# Self time by where the sampled frame's code lives (the leaf frame of each sample).
WHERE = (
    ("signature maths (cryptography, called from joserfc)", ("jws_algs.py", "jws_eddsa.py")),
    ("joserfc (JOSE serialising/parsing)", ("joserfc/",)),
    ("SQLAlchemy, and SQLite called from it", ("sqlalchemy/",)),
    ("uvicorn / httptools", ("uvicorn/",)),
    ("Starlette / FastAPI", ("starlette/", "fastapi/")),
    ("authsvc", ("authsvc/",)),
    ("asyncio and threads (scheduling, hand-offs)", ("asyncio/", "concurrent/", "threading.py")),
    ("json, logging, other stdlib", ("json/", "logging/", ".py")),
)


def summarise_py_spy(raw: Path) -> str:
    busy, idle = 0, 0
    steps: Counter[str] = Counter()
    where: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():  # py-spy ends a stack cut short by the process exiting oddly
            continue
        n = int(count)
        frames = stack.split(";")
        if frames[-1] in _IDLE_LEAVES:
            idle += n
            continue
        busy += n
        for label, needle in STEPS.items():
            if any(needle in frame for frame in frames):
                steps[label] += n
        leaf = frames[-1]
        label = next((name for name, marks in WHERE if any(m in leaf for m in marks)), "native / other")
        where[label] += n
    total = max(busy, 1)
    lines = [f"busy samples {busy} (left out: {idle} idle waits); every thread, GIL or not"]
    lines.append("steps (inclusive):")
    lines += [f"  {steps[label] / total * 100:5.1f} %  {label}" for label in STEPS if steps[label]]
    lines.append("self time by where the code lives:")
    lines += [f"  {n / total * 100:5.1f} %  {label}" for label, n in where.most_common()]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alg", choices=ALGS, default="EdDSA")
    parser.add_argument(
        "--grant",
        choices=(
            "refresh_token",
            "client_credentials",
            "dpop_refresh_token",
            "dpop_client_credentials",
            "dpop_users_me",
            "authorization_code",
        ),
        default="refresh_token",
    )
    parser.add_argument("--tool", choices=("py-spy", "perf", "none"), default="py-spy")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--database-url", help="PostgreSQL scratch database (default: SQLite).")
    args = parser.parse_args()

    options = parse_args(["--no-peer", *(["--database-url", args.database_url] if args.database_url else [])])
    if args.database_url:  # the schema, as scripts/bench.py brings it up to date
        scratch = Path(tempfile.gettempdir())
        run_cli(authsvc_env(scratch, "RS256", args.database_url), scratch, "db", "upgrade")
    runner = Bench(options, FULL)
    runner.cores.pin_self_to_generator()
    out = Path(tempfile.mkdtemp(prefix="authsvc-profile-"))
    try:
        proc = runner.start_authsvc("profile", args.alg)
        server = runner.seed(proc, args.alg, runner.tmp / "profile")
        form = form_headers(server)
        key = new_proof_key(args.alg)
        # Proofs signed ahead, one per request (benchkit.phases.dpop): enough for the warm-up and the run.
        count = int(_DPOP_RATE_BOUND * (args.seconds + 3))
        token_url, me_url = proc.url + "/token", proc.url + "/users/me"
        if args.grant in ("refresh_token", "dpop_refresh_token"):
            pool = runner.warm(server, runner.logins(server, runner.pool_size))
            proofs = (
                sign_proofs(key, "POST", token_url, count).proofs if args.grant.startswith("dpop") else None
            )
            load = Load(token_url, method="POST", headers=form, chain_tokens=pool, proofs=proofs)
        elif args.grant == "authorization_code":  # public client: no Authorization header
            bodies = _code_bodies(server, int(_CODE_RATE_BOUND * (args.seconds + 3)))
            warm = bodies[: len(bodies) // 4]  # the warm-up redeems codes of its own
            runner.generator.run(Load(token_url, method="POST", headers=_FORM, once_bodies=warm), 2)
            load = Load(token_url, method="POST", headers=_FORM, once_bodies=bodies[len(warm) :])
        elif args.grant == "dpop_users_me":
            login = httpx.post(
                token_url,
                content=login_body(server),
                headers={**form, "DPoP": sign_proofs(key, "POST", token_url, 1).proofs[0]},
            )
            access = login.json()["access_token"]
            proofs = sign_proofs(key, "GET", me_url, count, access_token=access).proofs
            load = Load(me_url, headers={"Authorization": f"DPoP {access}"}, proofs=proofs)
            runner.generator.run(
                Load(me_url, headers=load.headers, proofs=proofs[: count // 4]), 2
            )  # warm-up
            load.proofs = proofs[count // 4 :]
        else:
            body = "grant_type=client_credentials&scope=read%20write"
            proofs = (
                sign_proofs(key, "POST", token_url, count).proofs if args.grant.startswith("dpop") else None
            )
            load = Load(token_url, method="POST", headers=form, body=body, proofs=proofs)
            warm = Load(
                token_url,
                method="POST",
                headers=form,
                body=body,
                proofs=proofs[: count // 4] if proofs else None,
            )
            runner.generator.run(warm, 2)  # warm-up
            if proofs:
                load.proofs = proofs[count // 4 :]
        seconds = str(int(args.seconds))
        record: list[str] | None = None
        raw = out / ("profile.txt" if args.tool == "py-spy" else "perf.data")
        if args.tool == "py-spy":
            record = ["py-spy", "record", "-p", str(proc.pid), "-d", seconds, "-r", "250", "-f", "raw"]
            record += ["-o", str(raw), "--nonblocking"]
        elif args.tool == "perf":
            record = ["perf", "record", "-F", "999", "-g", "-p", str(proc.pid), "-o", str(raw)]
            record += ["--", "sleep", seconds]
        recorder = subprocess.Popen(record, stdout=subprocess.DEVNULL) if record else None
        time.sleep(0.5)
        cpu_before = cpu_seconds(proc.pid)
        result = runner.generator.run(load, args.seconds - 1)
        cpu_after = cpu_seconds(proc.pid)
        if recorder is not None:
            recorder.wait()
        served = result.requests
        cpu = (
            f", server CPU {(cpu_after - cpu_before) / served * 1000:.3f} ms a response"
            if cpu_before is not None and cpu_after is not None and served
            else ""
        )
        print(
            f"{args.alg} {args.grant}: {result.rps:,.0f} req/s while sampled, p50 {result.p50_ms:.2f} ms"
            f" p99 {result.p99_ms:.2f} ms"
            f"{cpu}, errors {result.errors} {result.error_detail}".rstrip()
        )
        if args.tool == "py-spy":
            print(summarise_py_spy(raw))
        elif args.tool == "perf":
            report = ["perf", "report", "-i", str(raw), "--no-children", "--sort", "dso", "--stdio"]
            report += ["-g", "none"]
            text = subprocess.run(report, capture_output=True, text=True, check=False).stdout
            print("\n".join(line for line in text.splitlines() if line.strip() and not line.startswith("#")))
        print(f"raw profile: {raw}")
    finally:
        runner.procs.stop_all()
    return 0


def _code_bodies(server: AuthsvcServer, count: int) -> list[str]:
    """Token request bodies redeeming codes of a first-party public client, minted by SSO as the
    bench mints them."""
    client_id = seed_spa_client(server, "profile")
    with httpx.Client(base_url=server.url, timeout=60) as browser:
        sign_in(browser, server, client_id)
        minted = mint_codes(server, client_id, httpx.Cookies(browser.cookies), count)
    return [code_body(code, verifier, client_id) for code, verifier in minted.codes]


if __name__ == "__main__":
    raise SystemExit(main())
