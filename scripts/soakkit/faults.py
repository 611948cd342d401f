"""The faults: a schedule scaled to the run, and one injector per kind.

Every kind comes once per cycle, in a shuffled order, about every 35 s after the warm-up
and before the cool-down, so that the five-minute mode injects each at least once and
the hour about a dozen times each. Each injection is a ``Fault`` window in the ledger,
from its first act to the moment its last act is done (the instance answers again, the
database accepts connections...); the ledger allows errors until ``recovery_limit``
after that, and measures recovery from it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from soakkit.clients import Workload
from soakkit.config import FAULT_KINDS
from soakkit.instances import Cli, Instance
from soakkit.ledger import Fault, Ledger
from soakkit.proxy import Nginx
from soakkit.services import Postgres, Redis

__all__ = ["Injector", "schedule"]

SPACING = 35.0


def schedule(seconds: float, warmup: float, cooldown: float, seed: int) -> list[tuple[float, str]]:
    """(offset from the start, kind) for every fault of a run of ``seconds``."""
    active = max(seconds - warmup - cooldown, 1.0)
    count = max(len(FAULT_KINDS), int(active // SPACING))
    rng = random.Random(seed)
    kinds: list[str] = []
    while len(kinds) < count:
        cycle = list(FAULT_KINDS)
        rng.shuffle(cycle)
        kinds += cycle
    kinds = kinds[:count]
    step = active / count
    return [(warmup + i * step, kind) for i, kind in enumerate(kinds)]


@dataclass
class Injector:
    ledger: Ledger
    postgres: Postgres
    redis: Redis
    proxy: Nginx
    instances: Sequence[Instance]
    skewed: Instance
    clock_file: Path
    skew: float
    cli: Cli
    workload: Workload
    seed: int

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.background: set[asyncio.Task[None]] = set()

    async def run(self, plan: list[tuple[float, str]], started: float, stop: asyncio.Event) -> None:
        for offset, kind in plan:
            wait = started + offset - time.time()
            if wait > 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=wait)
                    return
                except TimeoutError:
                    pass
            t0 = time.time()
            detail = await getattr(self, kind)()
            self.ledger.fault(Fault(kind, t0, time.time(), detail))
            print(
                f"[soak] {time.strftime('%H:%M:%S')} fault {kind}: {detail} ({time.time() - t0:.1f} s)",
                flush=True,
            )
        await asyncio.gather(*self.background)

    async def _mid_request(self) -> None:
        """Wait (up to 2 s) until some request is in flight: the kill lands mid-request."""
        deadline = time.monotonic() + 2
        while self.workload.inflight == 0 and time.monotonic() < deadline:  # noqa: ASYNC110 (a counter, no event)
            await asyncio.sleep(0.01)

    async def worker_kill(self) -> str:
        instance = self.rng.choice(list(self.instances))
        await self._mid_request()
        pid = instance.kill_worker()
        ready = await instance.wait_ready()
        return f"SIGKILL worker {pid} of {instance.name}; replaced in {ready:.1f} s"

    async def instance_kill(self) -> str:
        instance = self.rng.choice(list(self.instances))
        await self._mid_request()
        instance.kill()
        await asyncio.sleep(1.0)  # what a supervisor (systemd Restart=) would wait
        instance.start()
        ready = await instance.wait_ready()
        return f"SIGKILL of {instance.name}'s process group, restarted, ready in {ready:.1f} s"

    async def pg_restart(self) -> str:
        await asyncio.to_thread(self.postgres.restart)
        return "pg_ctl restart -m fast"

    async def redis_restart(self) -> str:
        await asyncio.to_thread(self.redis.stop)
        await asyncio.sleep(3.0)
        await asyncio.to_thread(self.redis.start)
        return "redis-server stopped for 3 s"

    async def proxy_reload(self) -> str:
        await asyncio.to_thread(self.proxy.reload)
        return "nginx -s reload"

    async def key_revoke(self) -> str:
        t_list = time.time()
        listing = await asyncio.to_thread(self.cli.run, "keys", "list")
        t_list = time.time() - t_list
        rows = [line.split() for line in listing.stdout.splitlines()[1:] if len(line.split()) >= 3]
        by_state: dict[str, list[str]] = {}
        for row in rows:
            by_state.setdefault(row[2], []).append(row[0])
        candidates = by_state.get("retiring") or by_state.get("standby") or by_state.get("pending")
        if not candidates:
            return "no key to revoke that is not signing"
        kid = candidates[-1]  # the one that stopped signing last: its tokens are the most alive
        t0 = time.time()
        self.ledger.key_revoked(kid, t0)
        await asyncio.to_thread(self.cli.run, "keys", "revoke", kid)
        revoked_at = time.time()
        live = [(tid, t) for tid, t in self.workload.live.items() if t.kid == kid and t.exp > revoked_at + 2]
        probes = [
            self.workload.probe_revoked(
                t.token, tid, kid, revoked_at, "access_token", user=t.user, by="key", proof=t.proof
            )
            for tid, t in live[:4]
        ]
        await asyncio.gather(*probes)
        state = "retiring" if by_state.get("retiring") else "not signing"
        return (
            f"keys revoke {kid[:12]} ({state}; keys list {t_list:.1f} s, revoke {revoked_at - t0:.1f} s); "
            f"{len(live)} live tokens it signed, {len(probes)} probed"
        )

    async def clock_skew(self) -> str:
        self.clock_file.write_text(f"{self.skew}\n")
        task = asyncio.create_task(self._unskew(25.0))
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return f"{self.skewed.name}'s clock +{self.skew:g} s for 25 s"

    async def _unskew(self, after: float) -> None:
        await asyncio.sleep(after)
        t0 = time.time()
        self.clock_file.write_text("0\n")
        self.ledger.fault(Fault("clock_skew", t0, time.time(), f"{self.skewed.name}'s clock back to 0"))
