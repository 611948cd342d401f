"""Every file authsvc creates is private to its user, whatever the umask it was started with.

Finding 6 of issue #13: the SQLite database was created 0644 — password hashes,
sessions, grace bodies holding live refresh tokens and, with
``AUTHSVC_KEY_STORE=database``, the encrypted keys. A local user read it, cracked
a weak passphrase and forged tokens. The rule (CONTRACT "Trust rules"): the
database and its ``-wal``/``-shm`` files are 0600. The class of defect is "a file
created with the process umask", so each entry point (``authsvc``,
``scripts/rotate_keys.py``) sets umask 0o077, and the database file is created
0600 before SQLite opens it (SQLite gives ``-wal``/``-shm`` the main file's mode).

Each test starts the real entry point under a hostile umask (0o022, the common
default, and 0o000) and then checks the mode of every file and directory under
the paths it was given: the database, its ``-wal``/``-shm``, the migration lock,
the key store's ``.lock``, manifest, private keys and temporaries, and any
directory created on the way.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from authsvc.app import create_app
from tests.support import authsvc_command, free_port, make_settings, server_env

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "rotate_keys.py"
HOSTILE_UMASKS = [0o022, 0o000]
PASSPHRASE = "a long passphrase for the key store"


def _env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = server_env(tmp_path, **settings)
    # Directories that do not exist yet: whatever authsvc creates on the way is checked too.
    env["AUTHSVC_DATABASE_URL"] = f"sqlite:///{tmp_path / 'data' / 'sub' / 'authsvc.db'}"
    env["AUTHSVC_KEYS_DIR"] = str(tmp_path / "secrets" / "keys")
    return env


def _run(args: list[str], env: dict[str, str], umask: int, cwd: Path, input: str | None = None) -> str:
    result = subprocess.run(
        args, env=env, cwd=cwd, umask=umask, input=input, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _cli(*args: str, env: dict[str, str], umask: int, cwd: Path, input: str | None = None) -> str:
    return _run([*authsvc_command(), *args], env, umask, cwd, input)


class _Server:
    def __init__(self, tmp_path: Path, env: dict[str, str], umask: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "server.log"  # outside the checked directories
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*authsvc_command(), "serve", "--port", str(self.port)],
                env=env,
                cwd=tmp_path,
                umask=umask,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError(f"server did not start: {self.log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def servers() -> Iterator[list[_Server]]:
    started: list[_Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.stop()


def _modes(*roots: Path) -> dict[str, int]:
    """Permission bits of every file and directory at and under ``roots``."""
    found: dict[str, int] = {}
    for root in roots:
        found[str(root)] = stat.S_IMODE(root.lstat().st_mode)
        if root.is_dir():
            for path in root.rglob("*"):
                found[str(path)] = stat.S_IMODE(path.lstat().st_mode)
    return found


def _assert_private(tmp_path: Path, *roots: Path) -> dict[str, int]:
    modes = _modes(*roots)
    loose = {
        path: oct(mode) for path, mode in modes.items() if mode != (0o700 if Path(path).is_dir() else 0o600)
    }
    assert not loose, f"not private: {loose}"
    return modes


def _names(modes: dict[str, int]) -> set[str]:
    return {Path(path).name for path in modes}


def _login(server: _Server) -> None:
    response = httpx.post(
        server.url + "/token",
        data={"grant_type": "password", "username": "alice", "password": "correct horse"},
    )
    assert response.status_code == 200, response.text
    refreshed = httpx.post(
        server.url + "/token",
        data={"grant_type": "refresh_token", "refresh_token": response.json()["refresh_token"]},
    )
    assert refreshed.status_code == 200, refreshed.text


@pytest.mark.parametrize("umask", HOSTILE_UMASKS, ids=oct)
@pytest.mark.parametrize("key_store", ["file", "database"])
def test_serve_and_rotate_keys_create_only_private_files(
    tmp_path: Path, servers: list[_Server], umask: int, key_store: str
) -> None:
    settings = {"key_store": key_store, "key_passphrase": PASSPHRASE} if key_store == "database" else {}
    env = _env(tmp_path, **settings)
    data, keys = tmp_path / "data", tmp_path / "secrets"
    servers.append(_Server(tmp_path, env, umask))
    _cli(
        "users",
        "add",
        "alice",
        "--password-stdin",
        env=env,
        umask=umask,
        cwd=tmp_path,
        input="correct horse\n",
    )
    _login(servers[0])  # writes: the WAL fills, sessions and grace rows land

    modes = _assert_private(tmp_path, data, *([keys] if key_store == "file" else []))
    assert {"authsvc.db", "authsvc.db-wal", "authsvc.db-shm", "authsvc.db.migrate.lock"} <= _names(modes)
    if key_store == "file":
        assert {".lock", "keyset.json"} <= _names(modes)
        assert any(name.endswith(".pem") for name in _names(modes))
    else:
        assert not keys.exists()  # the database key store makes no directory

    # The cron script writes keys (temporaries, manifest, .lock): it promotes the standby and
    # publishes a new one, so the signing key, the promoted successor and the new standby.
    _run([sys.executable, str(SCRIPT), "--force"], env, umask, tmp_path)
    after = _assert_private(tmp_path, data, *([keys] if key_store == "file" else []))
    if key_store == "file":
        assert sum(name.endswith(".pem") for name in _names(after)) == 3
    servers[0].stop()
    _assert_private(tmp_path, data, *([keys] if key_store == "file" else []))


@pytest.mark.parametrize("umask", HOSTILE_UMASKS, ids=oct)
def test_db_upgrade_creates_a_private_database(tmp_path: Path, umask: int) -> None:
    env = _env(tmp_path)
    _cli("db", "upgrade", env=env, umask=umask, cwd=tmp_path)
    modes = _assert_private(tmp_path, tmp_path / "data")
    assert {"sub", "authsvc.db", "authsvc.db.migrate.lock"} <= _names(modes)
    assert not (tmp_path / "secrets").exists()  # db upgrade touches no key store


def _loose_database(path: Path) -> None:
    """A database as an older authsvc left it: 0644, with -wal and -shm 0644 beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    holder = sqlite3.connect(path)  # a second connection keeps -wal and -shm on disk
    holder.execute("SELECT * FROM t").fetchall()
    conn.close()
    for name in ("authsvc.db", "authsvc.db-wal", "authsvc.db-shm"):
        os.chmod(path.parent / name, 0o644)
    holder.close()
    for name in ("authsvc.db-wal", "authsvc.db-shm"):
        candidate = path.parent / name
        if not candidate.exists():
            candidate.touch()
        os.chmod(candidate, 0o644)


@pytest.mark.parametrize("command", ["db upgrade", "serve"])
def test_an_existing_loose_database_is_tightened(
    tmp_path: Path, servers: list[_Server], command: str
) -> None:
    env = _env(tmp_path)
    database = tmp_path / "data" / "sub" / "authsvc.db"
    _loose_database(database)
    assert stat.S_IMODE(database.stat().st_mode) == 0o644
    if command == "serve":
        servers.append(_Server(tmp_path, env, 0o022))
    else:
        _cli("db", "upgrade", env=env, umask=0o022, cwd=tmp_path)
    assert database.exists()
    # -wal and -shm go when the last connection closes (db upgrade); what is there is private.
    # (The directory was the operator's: authsvc leaves an existing directory's mode alone.)
    _assert_private(tmp_path, *database.parent.glob("authsvc.db*"))


async def test_an_embedded_app_creates_its_database_private_under_umask_0(tmp_path: Path) -> None:
    """``create_app`` in a process of someone else's (uvicorn --factory, tests) with umask 0."""
    database = tmp_path / "embedded" / "authsvc.db"
    settings = make_settings(tmp_path, database_url=f"sqlite:///{database}")
    previous = os.umask(0)
    try:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:9000") as client:
                assert (await client.get("/readyz")).status_code == 200
            modes = _assert_private(tmp_path, database.parent, tmp_path / "keys")
            assert {"authsvc.db", "authsvc.db-wal", "authsvc.db-shm", "keyset.json"} <= _names(modes)
    finally:
        os.umask(previous)


@pytest.mark.parametrize("command", ["db upgrade", "serve"])
def test_a_path_to_something_else_is_never_touched(tmp_path: Path, command: str) -> None:
    """A mistyped path to a file that is not a database: one line, and its mode and neighbours stay."""
    other = tmp_path / "notes.txt"
    other.write_text("not a database\n")
    os.chmod(other, 0o644)
    env = _env(tmp_path)
    env["AUTHSVC_DATABASE_URL"] = f"sqlite:///{other}"
    args = ["serve", "--port", str(free_port())] if command == "serve" else ["db", "upgrade"]
    result = subprocess.run(
        [*authsvc_command(), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"authsvc: AUTHSVC_DATABASE_URL: cannot open the SQLite database {other}: file is not a database"
    ]
    assert stat.S_IMODE(other.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
