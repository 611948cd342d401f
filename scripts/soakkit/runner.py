"""Putting the soak together: services, instances, proxy, clients, verifiers, faults, ledger."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

from soakkit.clients import Workload
from soakkit.config import SoakConfig
from soakkit.dpop_chains import CLIENT_ID as DPOP_CLIENT
from soakkit.dpop_chains import DpopChains
from soakkit.faults import Injector, schedule
from soakkit.instances import REPO, Cli, Instance, rotation_host
from soakkit.ledger import Ledger, Sample
from soakkit.procs import fd_count, rss_kib
from soakkit.proxy import Nginx
from soakkit.report import write_outputs
from soakkit.services import Postgres, Redis
from soakkit.sign_ins import LOGOUT_URI, REDIRECT_URI, SCOPE, SignIns
from soakkit.verifiers import Verifiers

__all__ = ["main"]


def parse(argv: list[str] | None) -> SoakConfig:
    parser = argparse.ArgumentParser(
        prog="soak.py", description="Chaos soak of authsvc: exit 0 only when the ledger is clean."
    )
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the run (default 5)")
    parser.add_argument("--out", default=str(REPO / "test-artifacts" / "soak"), help="output directory")
    parser.add_argument("--chains", type=int, default=10, help="refresh chains at once (default 10)")
    parser.add_argument("--sign-ins", type=int, default=2, help="browser sign-in chains at once (default 2)")
    parser.add_argument("--dpop-chains", type=int, default=2, help="DPoP-bound chains at once (default 2)")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    args = parser.parse_args(argv)
    config = SoakConfig(
        minutes=args.minutes,
        out_dir=args.out,
        chains=args.chains,
        sign_ins=args.sign_ins,
        dpop_chains=args.dpop_chains,
        seed=args.seed,
    )
    object.__setattr__(config, "keep", args.keep)
    return config


async def sample_loop(ledger: Ledger, instances: list[Instance], every: float, stop: asyncio.Event) -> None:
    """RSS and descriptors of every authsvc process; a new pid is a new series."""
    while not stop.is_set():
        now = time.time()
        for instance in instances:
            for role, pid in instance.processes().items():
                rss, fds = rss_kib(pid), fd_count(pid)
                if rss is not None and fds is not None:
                    role_name = role.split("-")[0]
                    ledger.sample(Sample(f"{instance.name}-{role_name}-{pid}", now, rss, fds))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)


async def run(config: SoakConfig) -> int:
    root = Path(tempfile.mkdtemp(prefix="authsvc-soak-"))
    root.chmod(0o755)  # noqa: ASYNC240 (before anything runs): the postgres user must reach its cluster
    out = Path(config.out_dir)
    ledger = Ledger(grace=config.refresh_reuse_grace, skew_margin=config.skew + 1.0)
    postgres, redis = Postgres(root), Redis(root)
    instances: list[Instance] = []
    proxy: Nginx | None = None
    verifiers: Verifiers | None = None
    workload: Workload | None = None
    try:
        print(f"[soak] working directory {root}", flush=True)
        await asyncio.to_thread(postgres.init)
        redis.start()
        clock_file = root / "clock-offset"
        clock_file.write_text("0\n")
        # Ports first: the proxy needs both upstreams and the issuer is the proxy's URL.
        settings = config.authsvc_env() | {
            "AUTHSVC_DATABASE_URL": postgres.url,
            "AUTHSVC_REDIS_URL": redis.url,
        }
        a = Instance("a", settings, root)
        b = Instance("b", settings, root, clock_file=clock_file)
        proxy = Nginx(root, (a.port, b.port))
        settings["AUTHSVC_ISSUER"] = proxy.url
        a.settings = b.settings = dict(settings)
        cli = Cli(settings, root)
        cli.run("db", "upgrade")
        instances = [a, b]
        a.start()
        await a.wait_ready()  # the first start creates the first key and the standby
        b.start()
        await b.wait_ready()
        proxy.start()
        users = [(f"soak{i}", f"soak password {i}") for i in range(config.users)]
        for name, password in users:
            cli.run(
                "users",
                "add",
                name,
                "--password-stdin",
                "--scope",
                "read write",
                "--email",
                f"{name}@example.com",
                stdin=password + "\n",
            )
        added = cli.run("clients", "add", "svc", "--grant", "client_credentials", "--scope", "read")
        secret = added.stdout.strip().splitlines()[-1].split()[-1]
        cli.run(
            *("clients", "add", DPOP_CLIENT, "--public", "--scope", "read write"),
            *("--grant", "password", "--grant", "refresh_token"),
        )
        cli.run(
            *("clients", "add", "spa", "--public", "--first-party", "--scope", SCOPE),
            *("--grant", "authorization_code", "--grant", "refresh_token"),
            *("--redirect-uri", REDIRECT_URI, "--post-logout-redirect-uri", LOGOUT_URI),
        )

        verifiers = Verifiers(
            proxy.url, "authsvc", config.clock_skew, config.jwks_max_age, ledger, config.seed
        )
        await verifiers.start()
        workload = Workload(
            proxy.url,
            ledger,
            users,
            ("svc", secret),
            verifiers.submit,
            grace=config.refresh_reuse_grace,
            skew_margin=config.skew + 1.0,
            seed=config.seed,
        )
        sign_ins = SignIns(workload, users, "spa", proxy.url, config.seed)
        dpop_chains = DpopChains(workload, users, config.seed)
        injector = Injector(
            ledger, postgres, redis, proxy, instances, b, clock_file, config.skew, cli, workload, config.seed
        )
        plan = schedule(config.seconds, config.warmup, config.cooldown, config.seed)
        print(
            f"[soak] {len(plan)} faults planned over {config.minutes:g} min; issuer {proxy.url}", flush=True
        )

        stop, stop_faults = asyncio.Event(), asyncio.Event()
        started = time.time()
        tasks = [
            asyncio.create_task(sample_loop(ledger, instances, config.sample_every, stop)),
            asyncio.create_task(rotation_host("host1", cli, ledger, config.rotate_every, stop)),
            asyncio.create_task(
                _delayed(
                    config.rotate_every / 2, rotation_host("host2", cli, ledger, config.rotate_every, stop)
                )
            ),
            asyncio.create_task(workload.chains_loop(config.chains, stop)),
            asyncio.create_task(workload.client_credentials_loop(config.client_credentials_every, stop)),
            asyncio.create_task(sign_ins.loop(config.sign_ins, stop)),
            asyncio.create_task(dpop_chains.loop(config.dpop_chains, stop)),
        ]
        faults = asyncio.create_task(injector.run(plan, started, stop_faults))
        loop = asyncio.get_running_loop()
        interrupted = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, interrupted.set)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(interrupted.wait(), timeout=config.seconds)
        stop_faults.set()
        await faults
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await verifiers.drain(5)
        ended = time.time()
        verdict = ledger.check()
        fig = write_outputs(out, ledger, verdict, started, ended)
        print((out / "summary.md").read_text(), flush=True)
        print(f"[soak] outputs in {out}", flush=True)
        if interrupted.is_set():
            print("[soak] interrupted: not a pass", flush=True)
            return 1
        return 0 if fig["clean"] else 1
    finally:
        if workload is not None:
            await workload.close()
        if verifiers is not None:
            await verifiers.close()
        if proxy is not None:
            proxy.stop()
        for instance in instances:
            instance.stop()
        redis.stop()
        postgres.stop()
        out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (the run is over)
        for instance in instances:
            if instance.log.exists():
                shutil.copy(instance.log, out / f"instance-{instance.name}.log")
        if not getattr(config, "keep", False):
            shutil.rmtree(root, ignore_errors=True)


async def _delayed(seconds: float, coro: object) -> None:
    await asyncio.sleep(seconds)
    await coro  # type: ignore[misc]


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return asyncio.run(run(parse(argv)))
