"""``authsvc serve`` through its entry point: the issuer's warnings, and a path issuer served live.

- An http issuer off loopback is refused (one line naming ``AUTHSVC_ISSUER``)
  unless ``AUTHSVC_ALLOW_HTTP_ISSUER=true``, and then ``serve`` says so in one
  warning line.
- ``serve --host 0.0.0.0`` (or ``::``) with a loopback issuer warns in one
  line: tokens would name an address other hosts cannot reach.
- An issuer with a path is served under it by ``--workers 2`` as by one process.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support import authsvc_command, free_port, run_cli, server_env
from tests.trust_support import assert_one_line_error


def _serve(tmp_path: Path, host: str, health: str, *args: str, **settings: str) -> tuple[str, str]:
    """Run ``serve`` until ``health`` answers 200, stop it: (stdout, stderr)."""
    port = free_port()
    env = server_env(tmp_path, **{k: v.replace("PORT", str(port)) for k, v in settings.items()})
    process = subprocess.Popen(
        [*authsvc_command(), "serve", "--host", host, "--port", str(port), *args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "serve did not answer"
            try:
                if httpx.get(f"http://127.0.0.1:{port}{health}", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    return out.decode(), err.decode()


def _warnings(out: str, err: str) -> list[str]:
    return [line for line in (out + err).splitlines() if line.startswith("warning:")]


@pytest.mark.slow
@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_listening_on_every_address_with_a_loopback_issuer_warns_once(tmp_path: Path, host: str) -> None:
    if host == "::":
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::", 0))
        except OSError:
            pytest.skip("no IPv6 here")
    out, err = _serve(tmp_path, host, "/healthz")  # the default issuer: http://127.0.0.1:<port>
    (warning,) = _warnings(out, err)
    assert host in warning and "loopback" in warning
    assert warning in err.splitlines()  # on stderr


@pytest.mark.slow
def test_no_warning_on_loopback_or_with_a_public_issuer(tmp_path: Path) -> None:
    assert _warnings(*_serve(tmp_path, "127.0.0.1", "/healthz")) == []
    public = _serve(tmp_path, "0.0.0.0", "/healthz", issuer="https://auth.example.com")
    assert _warnings(*public) == []


def test_http_issuer_off_loopback_is_refused_without_the_setting(tmp_path: Path) -> None:
    env = server_env(tmp_path, issuer="http://192.0.2.10:8000")
    result = run_cli("serve", "--port", "0", env=env, cwd=tmp_path)
    assert_one_line_error(result)
    assert "AUTHSVC_ISSUER:" in result.stderr


@pytest.mark.slow
def test_http_issuer_off_loopback_with_the_setting_warns_once(tmp_path: Path) -> None:
    out, err = _serve(
        tmp_path, "127.0.0.1", "/healthz", issuer="http://192.0.2.10:8000", allow_http_issuer="true"
    )
    (warning,) = _warnings(out, err)
    assert "http://192.0.2.10:8000" in warning and "AUTHSVC_ALLOW_HTTP_ISSUER" in warning
    assert "authsvc http://192.0.2.10:8000 " in out


@pytest.mark.slow
def test_a_live_path_issuer_answers_only_under_its_path(tmp_path: Path) -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}/auth"
    env = server_env(tmp_path, issuer=issuer, docs="true")
    process = subprocess.Popen(
        [*authsvc_command(), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None
                assert time.monotonic() < deadline
                try:
                    if http.get("/auth/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            for _ in range(4):  # every worker, not only the first to answer
                inserted = http.get("/.well-known/oauth-authorization-server/auth")
                assert inserted.status_code == 200, inserted.text
                assert inserted.json()["token_endpoint"] == issuer + "/token"
                assert http.get("/auth/.well-known/openid-configuration").json() == inserted.json()
                assert http.get("/auth/.well-known/jwks.json").json()["keys"]
                assert http.get("/healthz").status_code == 404
                assert http.get("/.well-known/openid-configuration").status_code == 404
                assert http.get("/auth/docs").status_code == 200
                assert http.get("/auth/openapi.json").json()["servers"] == [{"url": "/auth"}]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
