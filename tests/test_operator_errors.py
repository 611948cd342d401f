"""Operator mistakes get one line and exit 1, and create nothing (finding 16 of issue #13).

- A mistyped SQLite ``AUTHSVC_DATABASE_URL`` made ``users list`` create an
  empty database (and its directory); only ``serve`` and ``db upgrade`` create one.
- A refused PostgreSQL connection said ``unexpected error: ConnectionRefusedError``;
  it now names the host, the port and the variable.
- A password prompt without a terminal printed getpass's warnings; it is one line.

Every command runs through its real entry point (``authsvc``, ``scripts/rotate_keys.py``).
``serve``'s own errors (the listening socket) are in ``test_serve_listen.py``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import LiveServer, free_port, postgres_base_url, run_cli, server_env

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "rotate_keys.py"
PASSPHRASE = "a long passphrase for the key store"


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


# --- a missing SQLite database ------------------------------------------------------------------------
COMMANDS_THAT_NEED_A_DATABASE: list[tuple[list[str], str | None, dict[str, str]]] = [
    (["users", "list"], None, {}),
    (["users", "add", "bob", "--password-stdin"], "correct horse\n", {}),
    (["users", "disable", "bob"], None, {}),
    (["users", "set-password", "bob", "--password-stdin"], "correct horse\n", {}),
    (["users", "sessions", "bob"], None, {}),
    (["users", "logout", "bob"], None, {}),
    (["clients", "list"], None, {}),
    (["clients", "add", "svc", "--public"], None, {}),
    (["clients", "remove", "svc"], None, {}),
    (["clients", "update", "svc", "--scope", "read"], None, {}),
    (["clients", "rotate-secret", "svc"], None, {}),
    (["db", "current"], None, {}),
    (["db", "prune"], None, {}),
    (["keys", "list"], None, {"key_store": "database", "key_passphrase": PASSPHRASE}),
    (["keys", "rotate", "--force"], None, {"key_store": "database", "key_passphrase": PASSPHRASE}),
    (["keys", "revoke", "x" * 43], None, {"key_store": "database", "key_passphrase": PASSPHRASE}),
    (["rotate_keys.py"], None, {"key_store": "database", "key_passphrase": PASSPHRASE}),
    (["rotate_keys.py", "--force"], None, {"key_store": "database", "key_passphrase": PASSPHRASE}),
]


def _run_command(args: list[str], env: dict[str, str], cwd: Path, input: str | None):  # type: ignore[no-untyped-def]
    if args[0] == "rotate_keys.py":
        return subprocess.run(
            [sys.executable, str(SCRIPT), *args[1:]],
            env=env,
            cwd=cwd,
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
    return run_cli(*args, env=env, cwd=cwd, input=input)


@pytest.mark.parametrize("missing", ["directory", "file"])
@pytest.mark.parametrize(
    ("args", "stdin", "settings"),
    COMMANDS_THAT_NEED_A_DATABASE,
    ids=[
        " ".join(args) + (" (database key store)" if s else "")
        for args, _i, s in COMMANDS_THAT_NEED_A_DATABASE
    ],
)
def test_commands_refuse_a_missing_sqlite_database_and_create_nothing(
    tmp_path: Path, args: list[str], stdin: str | None, settings: dict[str, str], missing: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    parent = work / "typo" if missing == "directory" else work
    database = parent / "authsvc.db"
    env = server_env(work, **settings)
    env["AUTHSVC_DATABASE_URL"] = f"sqlite:///{database}"
    before = sorted(work.rglob("*"))
    line = one_line_error(_run_command(args, env, work, stdin))
    assert f"AUTHSVC_DATABASE_URL: no database at {database}" in line
    assert "authsvc db upgrade" in line
    assert sorted(work.rglob("*")) == before  # no directory, no file, no lock


def test_db_upgrade_and_serve_do_create_it(
    tmp_path: Path, live_server_factory: Callable[..., LiveServer]
) -> None:
    env = server_env(tmp_path)
    env["AUTHSVC_DATABASE_URL"] = f"sqlite:///{tmp_path / 'new' / 'dir' / 'authsvc.db'}"
    result = run_cli("db", "upgrade", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "new" / "dir" / "authsvc.db").is_file()
    assert run_cli("users", "list", env=env, cwd=tmp_path).returncode == 0
    server = live_server_factory(database_url=f"sqlite:///{tmp_path / 'other' / 'authsvc.db'}")
    assert (tmp_path / "other" / "authsvc.db").is_file()
    assert server.cli("users", "list").returncode == 0


# --- an unreachable PostgreSQL ------------------------------------------------------------------------
PG_COMMANDS = [
    ["serve"],
    ["db", "upgrade"],
    ["db", "current"],
    ["users", "list"],
    ["clients", "list"],
    ["keys", "list"],
    ["rotate_keys.py"],
]


@pytest.mark.parametrize("args", PG_COMMANDS, ids=" ".join)
def test_a_refused_postgresql_names_host_port_and_variable(tmp_path: Path, args: list[str]) -> None:
    port = free_port()  # nothing listens there any more
    env = server_env(tmp_path, key_store="database", key_passphrase=PASSPHRASE)
    env["AUTHSVC_DATABASE_URL"] = f"postgresql://authsvc:secret-pw@127.0.0.1:{port}/authsvc"
    if args == ["serve"]:
        args = ["serve", "--port", str(free_port())]
    line = one_line_error(_run_command(args, env, tmp_path, None))
    assert (
        f"AUTHSVC_DATABASE_URL: cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused" in line
    )
    assert "secret-pw" not in line


@pytest.mark.parametrize("args", [["serve"], ["users", "list"]], ids=" ".join)
def test_an_unknown_postgresql_host_names_it(tmp_path: Path, args: list[str]) -> None:
    env = server_env(tmp_path)
    env["AUTHSVC_DATABASE_URL"] = "postgresql://authsvc@no-such-host.invalid:5433/authsvc"
    if args == ["serve"]:
        args = ["serve", "--port", str(free_port())]
    line = one_line_error(_run_command(args, env, tmp_path, None))
    assert "AUTHSVC_DATABASE_URL: cannot connect to PostgreSQL at no-such-host.invalid:5433" in line
    assert "unknown host" in line


def test_a_missing_postgresql_database_names_it(tmp_path: Path) -> None:
    base = postgres_base_url()
    if base is None:
        pytest.skip("AUTHSVC_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped")
    from sqlalchemy.engine import make_url

    url = make_url(base).set(database="authsvc_no_such_database")
    env = server_env(tmp_path)
    env["AUTHSVC_DATABASE_URL"] = url.render_as_string(hide_password=False)
    line = one_line_error(run_cli("users", "list", env=env, cwd=tmp_path))
    assert f"AUTHSVC_DATABASE_URL: cannot connect to PostgreSQL at {url.host}:{url.port or 5432}" in line
    assert line.endswith('database "authsvc_no_such_database" does not exist')


@pytest.mark.parametrize("args", [["users", "add", "bob"], ["users", "set-password", "bob"]], ids=" ".join)
def test_a_password_prompt_without_a_terminal_is_one_line(tmp_path: Path, args: list[str]) -> None:
    """No terminal (cron, a pipe, CI): one line pointing at --password-stdin, not getpass's warnings."""
    env = server_env(tmp_path)
    assert run_cli("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    line = one_line_error(run_cli(*args, env=env, cwd=tmp_path, input="correct horse\n"))
    assert "--password-stdin" in line
    assert run_cli("users", "list", env=env, cwd=tmp_path).stdout == ""  # and nobody was added
