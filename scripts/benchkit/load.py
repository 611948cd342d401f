"""Load generation: what to send (``Load``), what came back (``LoadResult``), and who sends it.

``wrk`` (``-t1``, one Lua script per run: the method, headers, body and, for
rotating refresh tokens, a queue that posts each token once and queues each
response's successor; for authorization codes, a queue of whole bodies, each
posted once; for DPoP, a queue of proofs, each sent once in the ``DPoP``
header) when it is installed, else an httpx/asyncio generator in the
bench process that follows the same rules, far weaker.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import signal
import subprocess
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from benchkit.cores import Cores
from benchkit.stats import percentile

__all__ = ["Generator", "HttpxGenerator", "Load", "LoadResult", "WrkGenerator", "pick_generator"]

DPOP_HEADER = "DPoP"
_REFRESH_TOKEN = re.compile(r'"refresh_token":"([^"]+)"')


@dataclass
class Load:
    url: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    chain_tokens: list[str] | None = None  # refresh tokens: each posted once, successors queued
    chain_prefix: str = "grant_type=refresh_token&refresh_token="
    # Whole request bodies, each posted once, in order, nothing queued after them (authorization
    # codes: single use). Once they run out the body is "exhausted" (an error answer), so a run
    # must be handed more than it can post in its duration: see LoadResult.requests.
    once_bodies: list[str] | None = None

    def __post_init__(self) -> None:
        if self.chain_tokens is not None and self.once_bodies is not None:
            raise ValueError("a load chains refresh tokens or posts bodies once, not both")

    max_requests: int = 0  # stop after this many responses (0: run the duration)
    # DPoP proofs signed ahead (benchkit.dpop_proofs): one per request, in order, in the ``DPoP``
    # header; once they run out the header is "exhausted" (an error answer), like once_bodies.
    proofs: list[str] | None = None


@dataclass
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    error_detail: str = ""  # e.g. "status 3, timeout 1"

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


class Generator(Protocol):
    name: str

    def describe(self) -> str: ...

    def run(self, load: Load, duration: float) -> LoadResult: ...


def pick_generator(choice: str, *, smoke: bool, cores: Cores, connections: int, workdir: Path) -> Generator:
    """``auto``: wrk when installed (the smoke run always takes httpx)."""
    if choice == "auto":
        choice = "httpx" if smoke or shutil.which("wrk") is None else "wrk"
    if choice == "wrk":
        if shutil.which("wrk") is None:
            raise SystemExit("bench: --generator wrk but wrk is not installed (apt-get install wrk)")
        return WrkGenerator(cores, connections, workdir)
    return HttpxGenerator(connections)


def _lua_str(text: str) -> str:
    level = "=" * 4
    if f"]{level}]" in text:
        raise ValueError("unquotable Lua string")
    return f"[{level}[{text}]{level}]"


def _queued(load: Load) -> list[str] | None:
    """The lines of the run's queue file: refresh tokens to chain, or bodies to post once."""
    return load.chain_tokens if load.chain_tokens is not None else load.once_bodies


def lua_script(
    load: Load, tokens_file: Path | None, marker: Path | None, proofs_file: Path | None = None
) -> str:
    """The wrk script of one run; ``done`` prints one ``BENCHJSON {...}`` line.

    ``tokens_file`` holds the queue (``_queued``): refresh tokens, each posted after
    ``chain_prefix`` and replaced by the response's, or whole bodies posted once;
    ``proofs_file`` the DPoP proofs, one sent with each request."""
    lines = [f"wrk.method = {_lua_str(load.method)}"]
    for name, value in load.headers.items():
        lines.append(f"wrk.headers[ {_lua_str(name)} ] = {_lua_str(value)}")
    if load.body is not None:
        lines.append(f"wrk.body = {_lua_str(load.body)}")
    chain = tokens_file is not None and load.chain_tokens is not None
    if tokens_file is not None:
        lines += [
            "local queue, head, tail = {}, 1, 1",
            f"for line in io.lines({_lua_str(str(tokens_file))}) do",
            "  if #line > 0 then queue[tail] = line; tail = tail + 1 end",
            "end",
            f"local prefix = {_lua_str(load.chain_prefix if chain else '')}",
        ]
    if proofs_file is not None:
        lines += [
            "local proofs, next_proof = {}, 1",
            f"for line in io.lines({_lua_str(str(proofs_file))}) do",
            "  if #line > 0 then proofs[#proofs + 1] = line end",
            "end",
        ]
    if tokens_file is not None or proofs_file is not None:
        lines.append("request = function()")
        if proofs_file is not None:
            lines += [
                "  local p = proofs[next_proof]",
                "  if p then proofs[next_proof] = nil; next_proof = next_proof + 1 else p = 'exhausted' end",
                f"  wrk.headers[ {_lua_str(DPOP_HEADER)} ] = p",
            ]
        if tokens_file is not None:
            lines += [
                "  local t = queue[head]",
                "  if t then queue[head] = nil; head = head + 1 else t = 'exhausted' end",
                "  return wrk.format(nil, nil, nil, prefix .. t)",
            ]
        else:
            lines.append("  return wrk.format()")
        lines.append("end")
    if chain or load.max_requests:
        lines += [
            f"local count, max, marker = 0, {int(load.max_requests)}, "
            f"{_lua_str(str(marker)) if marker else 'nil'}",
            "response = function(status, headers, body)",
            "  count = count + 1",
        ]
        if chain:
            lines += [
                "  if status == 200 then",
                '    local t = string.match(body, \'"refresh_token":"([^"]+)"\')',
                "    if t then queue[tail] = t; tail = tail + 1 end",
                "  end",
            ]
        lines += [
            "  if max > 0 and count == max and marker then",
            "    local f = io.open(marker, 'w'); if f then f:write('done'); f:close() end",
            "  end",
            "end",
        ]
    lines += [
        "done = function(summary, latency, requests)",
        "  local e = summary.errors",
        '  io.write(string.format(\'BENCHJSON {"requests":%d,"duration_us":%d,"p50_us":%.0f,'
        '"p99_us":%.0f,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n\', '
        "summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), "
        "e.connect, e.read, e.write, e.status, e.timeout))",
        "end",
    ]
    return "\n".join(lines) + "\n"


class WrkGenerator:
    name = "wrk"

    def __init__(self, cores: Cores, connections: int, workdir: Path) -> None:
        self.cores = cores
        self.connections = connections
        self.workdir = workdir
        self.binary = shutil.which("wrk") or "wrk"
        self._count = 0

    def describe(self) -> str:
        return f"wrk -t1 -c{self.connections} -d<secs> --timeout 10s (Lua scripts for POSTs and chaining)"

    def run(self, load: Load, duration: float) -> LoadResult:
        self._count += 1
        stem = self.workdir / f"wrk-{self._count}"
        tokens_file = None
        queued = _queued(load)
        if queued is not None:
            tokens_file = stem.with_suffix(".tokens")
            tokens_file.write_text("\n".join(queued) + "\n")
        proofs_file = None
        if load.proofs is not None:
            proofs_file = stem.with_suffix(".proofs")
            proofs_file.write_text("\n".join(load.proofs) + "\n")
        marker = stem.with_suffix(".done") if load.max_requests else None
        script = stem.with_suffix(".lua")
        script.write_text(lua_script(load, tokens_file, marker, proofs_file))
        seconds = max(1, math.ceil(duration))
        cmd = [
            *self.cores.generator_prefix(),
            self.binary,
            "-t1",
            f"-c{self.connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            load.url,
        ]
        out, err, code = self._wait(cmd, seconds, marker)
        match = re.search(r"^BENCHJSON (\{.*\})$", out, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"wrk gave no result (exit {code}): {err.strip()[:500]}")
        data = json.loads(match.group(1))
        kinds = {k: int(data[k]) for k in ("status", "timeout", "connect", "read", "write")}
        return LoadResult(
            requests=int(data["requests"]),
            seconds=data["duration_us"] / 1e6,
            p50_ms=data["p50_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            errors=sum(kinds.values()),
            error_detail=", ".join(
                f"{'status ≥ 400' if k == 'status' else k} {n}" for k, n in kinds.items() if n
            ),
        )

    @staticmethod
    def _wait(cmd: list[str], seconds: int, marker: Path | None) -> tuple[str, str, int | None]:
        """Run wrk; stop it early (SIGINT: it still reports) once the script wrote ``marker``."""
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + seconds + 30
            interrupted = False
            while proc.poll() is None and time.monotonic() < deadline:
                if marker is not None and not interrupted and marker.exists():
                    proc.send_signal(signal.SIGINT)
                    interrupted = True
                time.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return out, err, proc.returncode


class HttpxGenerator:
    name = "httpx"

    def __init__(self, connections: int) -> None:
        self.connections = connections

    def describe(self) -> str:
        return (
            f"httpx/asyncio in the bench process, {self.connections} concurrent requests "
            "(fallback: far weaker than wrk; ratios are closer to 1 than they should be)"
        )

    def run(self, load: Load, duration: float) -> LoadResult:
        return asyncio.run(self._run(load, duration))

    async def _run(self, load: Load, duration: float) -> LoadResult:
        import httpx

        conns = self.connections
        limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
        queue: deque[str] = deque(_queued(load) or [])
        prefix = load.chain_prefix if load.chain_tokens is not None else ""
        proofs: deque[str] = deque(load.proofs or [])
        latencies: list[float] = []
        errors = 0
        kinds: dict[str, int] = {}
        count = 0
        async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
            start = time.perf_counter()
            deadline = start + duration

            async def worker() -> None:
                nonlocal errors, count
                while time.perf_counter() < deadline and not (
                    load.max_requests and count >= load.max_requests
                ):
                    body = load.body
                    if load.chain_tokens is not None or load.once_bodies is not None:
                        body = prefix + (queue.popleft() if queue else "exhausted")
                    headers = load.headers
                    if load.proofs is not None:
                        proof = proofs.popleft() if proofs else "exhausted"
                        headers = {**headers, DPOP_HEADER: proof}
                    t0 = time.perf_counter()
                    try:
                        response = await client.request(load.method, load.url, headers=headers, content=body)
                    except httpx.HTTPError as exc:
                        errors += 1
                        kinds[type(exc).__name__] = kinds.get(type(exc).__name__, 0) + 1
                        await asyncio.sleep(0.01)
                        continue
                    latencies.append(time.perf_counter() - t0)
                    count += 1
                    if response.status_code >= 400:
                        errors += 1
                        name = f"status {response.status_code}"
                        kinds[name] = kinds.get(name, 0) + 1
                    elif load.chain_tokens is not None and response.status_code == 200:
                        found = _REFRESH_TOKEN.search(response.text)
                        if found:
                            queue.append(found.group(1))

            await asyncio.gather(*(worker() for _ in range(conns)))
            elapsed = time.perf_counter() - start
        latencies.sort()
        return LoadResult(
            requests=count,
            seconds=elapsed,
            p50_ms=percentile(latencies, 0.5) * 1000,
            p99_ms=percentile(latencies, 0.99) * 1000,
            errors=errors,
            error_detail=", ".join(f"{k} {n}" for k, n in sorted(kinds.items())),
        )
