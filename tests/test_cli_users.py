"""``authsvc users ...`` through the real entry point, against the harness's database.

The CLI runs as a subprocess (the installed entry point) on the same SQLite
file as an in-process app, so its effects are checked over HTTP.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from tests.support import ISSUER, AppHarness, run_cli, server_env


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.env = server_env(
            tmp_path,
            database_url=f"sqlite:///{tmp_path / 'authsvc.db'}",
            keys_dir=str(tmp_path / "keys"),
            issuer=ISSUER,
        )
        self.cwd = tmp_path

    async def __call__(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(run_cli, *args, env=self.env, input=input, cwd=self.cwd)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def assert_one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


async def test_users_add_then_login_and_me(harness: AppHarness, cli: Cli) -> None:
    result = await cli(
        "users",
        "add",
        "bob",
        "--password-stdin",
        "--scope",
        "read write",
        "--email",
        "bob@example.com",
        "--full-name",
        "Bob Builder",
        input="bob's pw\n",
    )
    assert_ok(result)
    assert "bob" in result.stdout
    user = await harness.services.users.by_username("bob")
    assert user is not None
    assert user.id in result.stdout  # the opaque sub is shown to the operator
    assert user.scopes == frozenset({"read", "write"})

    response = await harness.login("bob", "bob's pw")
    assert response.status_code == 200
    assert response.json()["scope"] == "read write"
    me = await harness.me(response.json()["access_token"])
    assert me.json() == {
        "username": "bob",
        "email": "bob@example.com",
        "full_name": "Bob Builder",
        "disabled": False,
    }


async def test_password_stdin_reads_one_line(harness: AppHarness, cli: Cli) -> None:
    two_lines, no_newline = await asyncio.gather(
        cli("users", "add", "bob", "--password-stdin", input="first line\nsecond line\n"),
        cli("users", "add", "carol", "--password-stdin", input="no newline"),
    )
    assert_ok(two_lines)
    assert_ok(no_newline)
    assert (await harness.login("bob", "first line")).status_code == 200
    assert (await harness.login("bob", "first line\nsecond line")).status_code == 400
    assert (await harness.login("carol", "no newline")).status_code == 200


async def test_refused_adds_are_one_line_exit_1(harness: AppHarness, cli: Cli) -> None:
    await harness.add_user("alice")
    duplicate, empty_password, client_name = await asyncio.gather(
        cli("users", "add", "alice", "--password-stdin", input="other pw\n"),
        cli("users", "add", "bob", "--password-stdin", input="\n"),
        cli("users", "add", "cli", "--password-stdin", input="long enough pw\n"),  # the default client's id
    )
    assert "alice" in assert_one_line_error(duplicate)
    assert "other pw" not in duplicate.stderr
    assert_one_line_error(empty_password)
    assert_one_line_error(client_name)
    assert (await harness.login()).status_code == 200  # the existing user is untouched
    assert (await harness.login("alice", "other pw")).status_code == 400
    assert await harness.services.users.by_username("bob") is None
    assert await harness.services.users.by_username("cli") is None


async def test_users_list(harness: AppHarness, cli: Cli) -> None:
    alice = await harness.add_user("alice", scopes="read")
    await harness.add_user("zed", "pw", scopes="read write", disabled=True)
    result = await cli("users", "list")
    assert_ok(result)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("alice")
    assert alice.id in lines[0]
    assert "active" in lines[0]
    assert lines[1].startswith("zed")
    assert "disabled" in lines[1]
    assert "$argon2" not in result.stdout  # never print hashes


async def test_disable_and_enable(harness: AppHarness, cli: Cli) -> None:
    await harness.add_user()
    before = (await harness.login()).json()
    assert_ok(await cli("users", "disable", "alice"))

    failed = await harness.login()
    assert failed.status_code == 400
    assert failed.json()["error"] == "invalid_grant"
    assert (await harness.refresh(before["refresh_token"])).json()["error"] == "invalid_grant"
    assert (await harness.me(before["access_token"])).status_code == 401
    assert (await harness.services.users.by_username("alice")).disabled

    assert_ok(await cli("users", "enable", "alice"))
    after = await harness.login()
    assert after.status_code == 200
    assert (await harness.me(after.json()["access_token"])).status_code == 200
    # enabling does not bring the old sessions back
    assert (await harness.refresh(before["refresh_token"])).json()["error"] == "invalid_grant"


async def test_set_password(harness: AppHarness, cli: Cli) -> None:
    await harness.add_user()
    before = (await harness.login()).json()
    assert_ok(await cli("users", "set-password", "alice", "--password-stdin", input="new secret\n"))

    old = await harness.login()
    assert old.status_code == 400
    assert old.json()["error"] == "invalid_grant"
    assert (await harness.login(password="new secret")).status_code == 200
    # every session from before is over
    assert (await harness.refresh(before["refresh_token"])).json()["error"] == "invalid_grant"
    assert (await harness.me(before["access_token"])).status_code == 401


async def test_unknown_user_is_one_line_exit_1(harness: AppHarness, cli: Cli) -> None:
    results = await asyncio.gather(
        cli("users", "disable", "ghost"),
        cli("users", "set-password", "ghost", "--password-stdin", input="long enough pw\n"),
    )
    for result in results:
        assert "ghost" in assert_one_line_error(result)


async def test_usage_errors_exit_2(cli: Cli) -> None:
    results = await asyncio.gather(
        cli("users", "add"),  # missing NAME
        cli("users", "list", "--bogus"),
        cli("users", "add", "bob", "--scope"),  # an option without its value
    )
    for result in results:
        assert result.returncode == 2, (result.stdout, result.stderr)
        assert result.stderr.strip()
        assert "Traceback" not in result.stderr + result.stdout
