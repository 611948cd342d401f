"""The authsvc processes: two ``serve --workers 2`` instances, the CLI, two rotation "hosts".

Every process runs the worktree's code (``PYTHONPATH``) through ``soakkit.launch``, the
real CLI entry; the instance started with a clock file can be skewed by the fault.
Instances run in their own process group so that killing "the whole instance" takes
the supervisor and its workers at once, as an OOM kill or a lost VM would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from soakkit.ledger import Answer, Ledger
from soakkit.procs import children, cmdline
from soakkit.services import free_port

__all__ = ["Cli", "Instance", "rotation_host"]

SCRIPTS = Path(__file__).resolve().parents[1]
REPO = SCRIPTS.parent


def base_env(settings: dict[str, str]) -> dict[str, str]:
    """The process environment: no inherited ``AUTHSVC_*``, the worktree's code first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSVC_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(SCRIPTS)])
    env.update(settings)
    return env


class Cli:
    """``authsvc ...`` commands with the soak's settings (exit status checked)."""

    def __init__(self, settings: dict[str, str], cwd: Path) -> None:
        self.env = base_env(settings)
        self.cwd = cwd

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "soakkit.launch", *args],
            input=stdin,
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"authsvc {' '.join(args)}: exit {result.returncode}: {result.stderr.strip()}")
        return result


class Instance:
    """One ``authsvc serve --workers 2`` on its own port."""

    def __init__(
        self, name: str, settings: dict[str, str], root: Path, clock_file: Path | None = None
    ) -> None:
        self.name = name
        self.port = free_port()
        self.settings = dict(settings)
        self.clock_file = clock_file
        self.log = root / f"{name}.log"
        self.cwd = root
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = base_env(self.settings)
        if self.clock_file is not None:
            env["SOAK_CLOCK_FILE"] = str(self.clock_file)
        cmd = [
            sys.executable,
            "-m",
            "soakkit.launch",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "2",
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd, env=env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.starts += 1

    async def wait_ready(self, limit: float = 60.0) -> float:
        """Seconds until /readyz answers 200 on this instance's own port with both workers up."""
        t0 = time.monotonic()
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() - t0 < limit:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited {self.proc.returncode}: see {self.log}")
                try:
                    if (await http.get(self.url + "/readyz")).status_code == 200 and len(self.workers()) == 2:
                        return time.monotonic() - t0
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {limit:g} s: see {self.log}")

    def supervisor_pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def workers(self) -> list[int]:
        pid = self.supervisor_pid()
        if pid is None:
            return []
        return [
            c for c in children(pid) if "spawn_main" in cmdline(c) and "resource_tracker" not in cmdline(c)
        ]

    def processes(self) -> dict[str, int]:
        """Role -> pid of every process of this instance (for the sampler)."""
        pid = self.supervisor_pid()
        if pid is None:
            return {}
        out = {"supervisor": pid}
        for child in children(pid):
            role = "worker" if "spawn_main" in cmdline(child) else "helper"
            out[f"{role}-{child}"] = child
        return out

    def kill_worker(self) -> int | None:
        workers = self.workers()
        if not workers:
            return None
        os.kill(workers[0], signal.SIGKILL)
        return workers[0]

    def kill(self) -> None:
        """SIGKILL the whole process group: supervisor and workers at once."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


async def rotation_host(name: str, cli: Cli, ledger: Ledger, every: float, stop: asyncio.Event) -> None:
    """A cron host: ``scripts/rotate_keys.py`` every ``every`` seconds until ``stop``.

    Each run is an answer in the ledger (kind ``rotate``; exit 0 is 200, anything else
    599, a 5xx: a failed run outside a fault window fails the soak). Printed changes go to
    ``ledger.rotations``.
    """
    script = str(SCRIPTS / "rotate_keys.py")
    while not stop.is_set():
        t0 = time.time()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            script,
            env=cli.env,
            cwd=cli.cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        t1 = time.time()
        status = 200 if proc.returncode == 0 else 599
        ledger.answer(Answer("rotate", t0, t1, status, detail=f"{name}: {err.decode().strip()[:200]}"))
        for line in out.decode().splitlines():
            if line.strip():
                ledger.rotations.append((t1, f"{name}: {line.strip()}"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
