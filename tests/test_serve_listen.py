"""``authsvc serve`` listens on a socket it bound itself (finding 16 of issue #13).

- On a busy port ``serve`` exited 3 after uvicorn's noisy lines; it now binds the
  socket first — before the database or the keys are touched — and says which
  host:port, exit 1. No check-then-bind race: two servers started at once on
  one port, exactly one serves.
- uvicorn's own X-Forwarded-For handling is off (CONTRACT "Trust rules"): with it
  on, a caller on 127.0.0.1 picked its own address with a forged header, on one
  worker and on ``--workers N``.
- The start-up hint shows a command that works as printed (``--password-stdin``).
"""

from __future__ import annotations

import shlex
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import (
    LiveServer,
    authsvc_command,
    free_port,
    run_cli,
    server_env,
    start_server,
    stop_server,
)
from tests.test_operator_errors import one_line_error


@pytest.fixture
def occupied_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


# --- serve: the listening socket ------------------------------------------------------------------
@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_on_a_busy_port_is_one_line_and_creates_nothing(
    tmp_path: Path, occupied_port: int, workers: str
) -> None:
    env = server_env(tmp_path)
    result = run_cli(
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(occupied_port),
        "--workers",
        workers,
        env=env,
        cwd=tmp_path,
    )
    line = one_line_error(result)
    assert line == f"authsvc: cannot listen on 127.0.0.1:{occupied_port}: address already in use"
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no database, no keys


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("256.0.0.1", "unknown host"),
        ("no-such-host.invalid", "unknown host"),
        ("192.0.2.1", "cannot assign requested address"),  # TEST-NET-1: not this machine's
    ],
)
def test_serve_on_a_bad_host_is_one_line(tmp_path: Path, host: str, reason: str) -> None:
    port = free_port()
    result = run_cli("serve", "--host", host, "--port", str(port), env=server_env(tmp_path), cwd=tmp_path)
    assert one_line_error(result) == f"authsvc: cannot listen on {host}:{port}: {reason}"
    assert list(tmp_path.iterdir()) == []


def test_two_servers_racing_for_one_port(tmp_path: Path) -> None:
    """Started at the same instant, exactly one serves; the other says the port is busy."""
    for round_ in range(3):
        port = free_port()
        workdir = tmp_path / f"round-{round_}"
        workdir.mkdir()
        env = server_env(workdir)
        procs = [
            subprocess.Popen(
                [*authsvc_command(), "serve", "--port", str(port)],
                env=env,
                cwd=workdir,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and all(p.poll() is None for p in procs):
                time.sleep(0.05)
            losers = [p for p in procs if p.poll() is not None]
            assert len(losers) == 1, "both exited, or neither did within 60 s"
            loser = losers[0]
            _out, err = loser.communicate(timeout=10)
            assert loser.returncode == 1
            assert err.strip() == f"authsvc: cannot listen on 127.0.0.1:{port}: address already in use"
            winner = next(p for p in procs if p is not loser)
            deadline = time.monotonic() + 30
            while True:
                assert winner.poll() is None
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, "the winner never served"
                    time.sleep(0.1)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
                    proc.communicate(timeout=15)


def test_serve_on_port_0_names_the_port_it_got(tmp_path: Path) -> None:
    """The issuer of ``--port 0`` is the port the system gave, not ``:0`` (the socket is ours)."""
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*authsvc_command(), "serve", "--port", "0"],
            env=server_env(tmp_path),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        url = None
        while url is None:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            for line in log.read_text().splitlines():
                if line.startswith("authsvc http://127.0.0.1:"):
                    url = line.split()[1]
            time.sleep(0.1)
        assert not url.endswith(":0")
        while True:
            try:
                metadata = httpx.get(url + "/.well-known/oauth-authorization-server", timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert metadata.json()["issuer"] == url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


# --- serve: uvicorn's proxy headers are off ---------------------------------------------------------
def _failed_logins_with_forged_addresses(url: str, count: int) -> list[int]:
    statuses = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(count):
            response = client.post(
                "/token",
                data={"grant_type": "password", "username": f"nobody-{i}", "password": "wrong password"},
                headers={"X-Forwarded-For": f"203.0.113.{i + 1}"},
            )
            statuses.append(response.status_code)
    return statuses


def test_a_forged_x_forwarded_for_does_not_change_the_address(tmp_path: Path) -> None:
    """With AUTHSVC_TRUSTED_PROXIES empty, 127.0.0.1 stays 127.0.0.1 whatever X-Forwarded-For says.

    uvicorn trusts 127.0.0.1's header by default and rewrote the client address,
    so each forged value was a fresh address and the per-address limit never tripped.
    """
    server = start_server(tmp_path, login_max_per_address="3", login_max_per_user="100")
    try:
        assert _failed_logins_with_forged_addresses(server.url, 4) == [400, 400, 400, 429]
    finally:
        stop_server(server)


def test_a_forged_x_forwarded_for_does_not_change_the_address_with_workers(tmp_path: Path) -> None:
    """The same on ``--workers 2``: of 7 failures, some worker sees its 4th from 127.0.0.1.

    (Per-process counters here: whichever way requests spread over two workers,
    one of them counts at least 4 — unless the forged header changed the address.)
    """
    server = start_server(
        tmp_path, extra_args=("--workers", "2"), login_max_per_address="3", login_max_per_user="100"
    )
    try:
        assert 429 in _failed_logins_with_forged_addresses(server.url, 7)
    finally:
        stop_server(server)


# --- serve's hint -----------------------------------------------------------------------------------
def test_the_hint_works_as_printed(live_server_factory: Callable[..., LiveServer]) -> None:
    server = live_server_factory()
    hint = next(
        line.split("add a user with: ", 1)[1]
        for line in server.log_path.read_text().splitlines()
        if "add a user with: " in line
    )
    echo, command = hint.split(" | ")
    echo_args, command_args = shlex.split(echo), shlex.split(command)
    assert echo_args[0] == "echo" and command_args[:3] == ["authsvc", "users", "add"]
    assert "--password-stdin" in command_args
    result = server.cli(*command_args[1:], input=echo_args[1] + "\n")
    assert result.returncode == 0, result.stderr
    name = command_args[3]
    response = httpx.post(
        server.url + "/token", data={"grant_type": "password", "username": name, "password": echo_args[1]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "read write"
