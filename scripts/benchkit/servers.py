"""The server processes a run starts, and how each is started.

authsvc (``authsvc serve``, one per algorithm and for growth and memory), the
bare FastAPI ceilings and the static responder (``bench.py _bare|_static``, see
``ceiling_apps``), and the peer, node-oidc-provider (``scripts/bench_peer``).
Every server is pinned to the server core and stopped by ``Procs.stop_all``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from benchkit.config import ARGON2, AUTH_CODE_TTL, BENCH_SCRIPT, PEER_DIR
from benchkit.cores import Cores

__all__ = [
    "Proc",
    "Procs",
    "authsvc_cmd",
    "authsvc_env",
    "basic_auth",
    "cpu_seconds",
    "form_auth",
    "free_port",
    "rss_mib",
    "run_cli",
    "start_authsvc",
    "start_bare",
    "start_peer",
    "start_static",
    "wait_http",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def basic_auth(client_id: str, secret: str) -> str:
    # RFC 6749 §2.3.1: form-encode each half, then Basic.
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def form_auth(client_id: str, secret: str) -> dict[str, str]:
    """The headers of a form POST to a token endpoint by ``client_id`` (client_secret_basic)."""
    form = "application/x-www-form-urlencoded"
    return {"Content-Type": form, "Authorization": basic_auth(client_id, secret)}


class Proc:
    """A server process we started; always stopped by ``Procs.stop_all``."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path, url: str) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path
        self.url = url

    @property
    def pid(self) -> int:
        return self.popen.pid

    def rss(self) -> float | None:
        return rss_mib(self.pid)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class Procs:
    """Every process of the run, so that none outlives it."""

    def __init__(self) -> None:
        self.running: list[Proc] = []

    def spawn(
        self, name: str, cmd: list[str], *, env: dict[str, str], cwd: Path, log_path: Path, url: str
    ) -> Proc:
        with log_path.open("ab") as out:
            popen = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        proc = Proc(name, popen, log_path, url)
        self.running.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(self.running):
            with contextlib.suppress(Exception):
                proc.stop()
        self.running.clear()


def wait_http(proc: Proc, path: str, timeout: float = 60) -> None:
    """Until ``path`` answers below 500; the server's log tail if it exits or never does."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}): {proc.log_tail()}")
        try:
            if httpx.get(proc.url + path, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not answer {path} within {timeout:.0f}s: {proc.log_tail()}")


def _clean_env() -> dict[str, str]:
    """This environment without any AUTHSVC_ setting of the caller's."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("AUTHSVC_")}


# --- authsvc ------------------------------------------------------------------------------------
def authsvc_env(
    workdir: Path, alg: str, database_url: str | None, *, argon2: dict[str, int] | None = None
) -> dict[str, str]:
    """The environment of an authsvc server of the bench; ``argon2`` other hashing parameters."""
    argon2 = argon2 or ARGON2
    env = _clean_env()
    env.update(
        {
            "AUTHSVC_DATABASE_URL": database_url or f"sqlite:///{workdir / 'authsvc.db'}",
            "AUTHSVC_KEYS_DIR": str(workdir / "keys"),
            "AUTHSVC_SIGNING_ALG": alg,
            "AUTHSVC_ARGON2_MEMORY_KIB": str(argon2["memory_kib"]),
            "AUTHSVC_ARGON2_TIME_COST": str(argon2["time_cost"]),
            "AUTHSVC_ARGON2_PARALLELISM": str(argon2["parallelism"]),
            "AUTHSVC_REFRESH_REUSE_GRACE": "0",
            # The password row measures a login's cost with 32 at once for one user from one
            # address: the failed-login limits (which reserve each attempt) must not refuse them.
            "AUTHSVC_LOGIN_MAX_PER_USER": "1000000",
            "AUTHSVC_LOGIN_MAX_PER_ADDRESS": "1000000",
            # The authorization_code row mints its codes before the timed run, one SSO GET /authorize
            # each (about 250/s on one core): a --duration 10 run needs ~13,000, longer to mint than
            # the default 60 s lifetime. A code's lifetime changes no work its redemption does.
            "AUTHSVC_AUTH_CODE_TTL": str(AUTH_CODE_TTL),
        }
    )
    return env


def authsvc_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from authsvc.cli_entry import main; main()", *args]


def run_cli(env: dict[str, str], cwd: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        authsvc_cmd(*args), env=env, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"authsvc {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def start_authsvc(
    procs: Procs,
    cores: Cores,
    name: str,
    env: dict[str, str],
    workdir: Path,
    *,
    wrapper: Sequence[str] = (),
    timeout: float = 60,
) -> Proc:
    """``authsvc serve`` on a free port of 127.0.0.1, answering /healthz within ``timeout`` s;
    ``wrapper``: a command it runs under (after the core pin), as valgrind for bench_instructions.py."""
    port = free_port()
    proc = procs.spawn(
        name,
        [*cores.server_prefix(), *wrapper, *authsvc_cmd("serve", "--host", "127.0.0.1", "--port", str(port))],
        env=env,
        cwd=workdir,
        log_path=workdir / "server.log",
        url=f"http://127.0.0.1:{port}",
    )
    wait_http(proc, "/healthz", timeout=timeout)
    return proc


# --- the ceilings ---------------------------------------------------------------------------------
def start_static(procs: Procs, cores: Cores, workdir: Path) -> Proc:
    """The generator's ceiling: raw asyncio answering every request with the same bytes."""
    port = free_port()
    proc = procs.spawn(
        "static",
        [*cores.server_prefix(), sys.executable, str(BENCH_SCRIPT), "_static", str(port)],
        env=dict(os.environ),
        cwd=workdir,
        log_path=workdir / "server.log",
        url=f"http://127.0.0.1:{port}",
    )
    wait_http(proc, "/")
    return proc


def start_bare(procs: Procs, cores: Cores, name: str, workdir: Path, config: dict[str, Any]) -> Proc:
    """The bare FastAPI app (``ceiling_apps.serve_bare``) with ``config`` written beside it."""
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config))
    port = free_port()
    proc = procs.spawn(
        name,
        [*cores.server_prefix(), sys.executable, str(BENCH_SCRIPT), "_bare", str(port), str(config_path)],
        env=_clean_env(),
        cwd=workdir,
        log_path=workdir / "server.log",
        url=f"http://127.0.0.1:{port}",
    )
    wait_http(proc, "/bytes")
    return proc


# --- the peer ----------------------------------------------------------------------------------------
def start_peer(
    procs: Procs,
    cores: Cores,
    alg: str,
    workdir: Path,
    *,
    secret: str,
    pool: int,
    tokens_file: Path,
    control_port: int = 0,
    redis_url: str | None = None,
    redis_prefix: str | None = None,
) -> Proc:
    """node-oidc-provider (``scripts/bench_peer/server.js``); it writes ``pool`` refresh tokens per client.

    With ``control_port``, a second, peer-only listener there mints authorization codes on request
    (``POST /bench/codes?count=N``); the measured port serves only the provider. With ``redis_url``
    its storage is its Redis adapter (``redis_adapter.js``), every key under ``redis_prefix``, which
    it deletes at its start and its exit; else its in-memory adapter."""
    port = free_port()
    storage: dict[str, str] = {"BENCH_ADAPTER": "memory"}
    if redis_url is not None:
        if not redis_prefix:
            raise ValueError("the peer on Redis needs a key prefix of its own")
        storage = {"BENCH_ADAPTER": "redis", "BENCH_REDIS_URL": redis_url, "BENCH_REDIS_PREFIX": redis_prefix}
    env = {
        **os.environ,
        "BENCH_PORT": str(port),
        "BENCH_CONTROL_PORT": str(control_port),
        "BENCH_ALG": alg,
        "BENCH_CLIENT_SECRET": secret,
        "BENCH_POOL": str(pool),
        "BENCH_TOKENS_OUT": str(tokens_file),
        "NODE_ENV": "production",
        **storage,
    }
    proc = procs.spawn(
        f"peer-{alg}-{storage['BENCH_ADAPTER']}",
        [*cores.server_prefix(), "node", str(PEER_DIR / "server.js")],
        env=env,
        cwd=PEER_DIR,
        log_path=workdir / "server.log",
        url=f"http://127.0.0.1:{port}",
    )
    wait_http(proc, "/jwks")
    return proc


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of the process so far, every thread counted (/proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    # After "pid (comm) ": state is field 3, utime and stime fields 14 and 15 (proc(5)).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
