"""The admin listener of a real ``authsvc serve``: a second port in the same processes, with
``--workers 2`` too; /metrics only there; the admin API answers with real tokens."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support import free_port, run_cli, start_server, stop_server

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_answers_the_admin_api_on_its_own_port(tmp_path: Path, workers: int) -> None:
    admin_port = free_port()
    extra = ("--workers", str(workers)) if workers > 1 else ()
    server = start_server(tmp_path, extra_args=extra, admin_bind=f"127.0.0.1:{admin_port}")
    try:
        added = run_cli(
            "users",
            "add",
            "root",
            "--password-stdin",
            "--scope",
            "authsvc:admin",
            env=server.env,
            input="root password\n",
        )
        assert added.returncode == 0, added.stderr
        admin = f"http://127.0.0.1:{admin_port}"
        assert httpx.get(server.url + "/metrics").status_code == 404
        assert httpx.get(admin + "/metrics").status_code == 200
        assert httpx.get(server.url + "/admin/keys").status_code == 404  # never on the public port
        token = httpx.post(
            server.url + "/token",
            data={"grant_type": "password", "username": "root", "password": "root password"},
        ).json()["access_token"]
        for _ in range(2 * workers):  # every worker routes by the port
            keys = httpx.get(admin + "/admin/keys", headers={"Authorization": f"Bearer {token}"})
            assert keys.status_code == 200, keys.text
            assert keys.json()["keys"]
        assert httpx.get(admin + "/admin/keys").status_code == 401
        assert httpx.get(admin + "/token").status_code == 404  # the public API is not on the admin port
    finally:
        stop_server(server)
