"""The file key store on disk: modes, PKCS#8, passphrase encryption, atomic writes."""

from __future__ import annotations

import gc
import json
import os
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiosqlite
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from authsvc.clock import FrozenClock
from authsvc.errors import KeyStoreError
from authsvc.keys import store_file
from authsvc.keys.store_file import atomic_write
from tests.support import ISSUER, AppHarness, authsvc_command, free_port, server_env

PASSPHRASE = "correct battery horse staple"
OTHER_PASSPHRASE = "correct battery horse stable"


@pytest.fixture
def clock() -> FrozenClock:
    """Near the real time, so PyJWT's own time checks apply."""
    return FrozenClock(float(int(time.time())))


@pytest.fixture
def no_umask() -> Iterator[None]:
    """Modes must not depend on the operator's umask."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def pems(keys_dir: Path) -> list[Path]:
    return sorted(keys_dir.glob("*.pem"))


async def _token_verifies(harness: AppHarness) -> None:
    await harness.add_user()
    token = (await harness.login()).json()["access_token"]
    kid = jwt.get_unverified_header(token)["kid"]
    (jwk,) = [
        k for k in (await harness.client.get("/.well-known/jwks.json")).json()["keys"] if k["kid"] == kid
    ]
    alg = jwk["alg"]
    claims = jwt.decode(token, jwt.PyJWK(jwk), algorithms=[alg], audience="authsvc", issuer=ISSUER)
    assert claims["client_id"] == "cli"


# --- layout and modes -----------------------------------------------------------------------
@pytest.mark.usefixtures("no_umask")
async def test_first_start_creates_private_files(harness_factory: Callable[..., Any]) -> None:
    harness: AppHarness = await harness_factory()
    keys_dir = harness.settings.keys_dir
    assert mode(keys_dir) == 0o700
    assert mode(keys_dir / "keyset.json") == 0o600
    assert len(pems(keys_dir)) == 2  # the signing key and the standby (AUTHSVC_KEY_STANDBY)
    for pem in pems(keys_dir):
        assert mode(pem) == 0o600
    for path in keys_dir.iterdir():
        assert mode(path) & 0o077 == 0, f"{path.name} is readable by others: {oct(mode(path))}"


async def test_manifest_names_the_key_and_holds_no_private_member(harness: AppHarness) -> None:
    keys_dir = harness.settings.keys_dir
    manifest = json.loads((keys_dir / "keyset.json").read_text())
    text = json.dumps(manifest)
    kids = [k["kid"] for k in manifest["keys"]]
    assert sorted(kids) == [pem.stem for pem in pems(keys_dir)]
    assert len(kids) == 2
    for member in ('"d"', '"p"', '"q"', '"dp"', '"dq"', '"qi"', "PRIVATE KEY"):
        assert member not in text


async def test_no_temporary_files_are_left(harness_factory: Callable[..., Any]) -> None:
    harness: AppHarness = await harness_factory()
    await harness_factory()  # a second start on the same store
    leftovers = [p.name for p in harness.settings.keys_dir.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


async def test_restart_keeps_the_key(harness_factory: Callable[..., Any]) -> None:
    first: AppHarness = await harness_factory()
    before = [p.name for p in pems(first.settings.keys_dir)]
    jwks_before = (await first.client.get("/.well-known/jwks.json")).json()
    second: AppHarness = await harness_factory()
    assert [p.name for p in pems(second.settings.keys_dir)] == before
    assert (await second.client.get("/.well-known/jwks.json")).json() == jwks_before


# --- PEM format ------------------------------------------------------------------------------------
async def test_rsa_key_is_unencrypted_pkcs8_of_2048_bits(harness: AppHarness) -> None:
    for pem in pems(harness.settings.keys_dir):
        data = pem.read_bytes()
        assert data.startswith(b"-----BEGIN PRIVATE KEY-----")
        assert b"RSA PRIVATE KEY" not in data  # PKCS#1 is not PKCS#8
        key = load_pem_private_key(data, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        assert key.key_size == 2048
        assert key.private_numbers().public_numbers.e == 65537


async def test_ed25519_key_is_pkcs8(harness_factory: Callable[..., Any]) -> None:
    harness: AppHarness = await harness_factory(signing_alg="EdDSA")
    for pem in pems(harness.settings.keys_dir):
        data = pem.read_bytes()
        assert data.startswith(b"-----BEGIN PRIVATE KEY-----")
        assert isinstance(load_pem_private_key(data, password=None), ed25519.Ed25519PrivateKey)


@pytest.mark.parametrize("alg", ["RS256", "EdDSA"])
async def test_passphrase_encrypts_the_key_and_the_server_still_signs(
    harness_factory: Callable[..., Any], alg: str
) -> None:
    harness: AppHarness = await harness_factory(signing_alg=alg, key_passphrase=PASSPHRASE)
    for pem in pems(harness.settings.keys_dir):
        data = pem.read_bytes()
        assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert b"-----BEGIN PRIVATE KEY-----" not in data
        with pytest.raises(TypeError):
            load_pem_private_key(data, password=None)
        with pytest.raises(ValueError):
            load_pem_private_key(data, password=b"wrong passphrase, long enough")
        load_pem_private_key(data, password=PASSPHRASE.encode())
    assert PASSPHRASE.encode() not in (harness.settings.keys_dir / "keyset.json").read_bytes()
    await _token_verifies(harness)


def _sqlite_workers() -> set[threading.Thread]:
    """aiosqlite runs one worker thread per open connection."""
    return {t for t in threading.enumerate() if "_connection_worker_thread" in t.name and t.is_alive()}


async def assert_start_fails(harness_factory: Callable[..., Any], **overrides: Any) -> None:
    """The app refuses to start with KeyStoreError, and leaves no database connection open."""
    before = _sqlite_workers()
    with pytest.raises(KeyStoreError):
        await harness_factory(**overrides)
    leaked = _sqlite_workers() - before
    for thread in leaked:
        thread.join(timeout=1)
    leaked = {t for t in leaked if t.is_alive()}
    # Close what leaked, so it is not blamed on a later test when collected.
    for obj in gc.get_objects():
        if isinstance(obj, aiosqlite.Connection) and obj._thread in leaked:
            await obj.close()
    assert not leaked, f"the failed start left {len(leaked)} database connection(s) open"


async def test_wrong_passphrase_fails_the_start(harness_factory: Callable[..., Any]) -> None:
    await harness_factory(key_passphrase=PASSPHRASE)
    await assert_start_fails(harness_factory, key_passphrase=OTHER_PASSPHRASE)


async def test_missing_passphrase_fails_the_start(harness_factory: Callable[..., Any]) -> None:
    await harness_factory(key_passphrase=PASSPHRASE)
    await assert_start_fails(harness_factory)


async def test_a_passphrase_set_on_an_unencrypted_store_fails_the_start(
    harness_factory: Callable[..., Any],
) -> None:
    """A passphrase set later cannot open what was never encrypted: the same error as a wrong one."""
    await harness_factory()
    await assert_start_fails(harness_factory, key_passphrase=PASSPHRASE)


async def test_serve_with_a_wrong_passphrase_is_one_line_exit_1(
    harness_factory: Callable[..., Any], tmp_path: Path
) -> None:
    """CONTRACT.md, Command line: exit 1, one clear line on stderr, no traceback."""
    harness: AppHarness = await harness_factory(key_passphrase=PASSPHRASE)
    env = server_env(
        tmp_path,
        database_url=harness.settings.database_url,
        keys_dir=str(harness.settings.keys_dir),
        key_passphrase=OTHER_PASSPHRASE,
    )
    try:
        result = subprocess.run(  # noqa: ASYNC221 - a short-lived child that must fail at start
            [*authsvc_command(), "serve", "--host", "127.0.0.1", "--port", str(free_port())],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("serve started with a wrong passphrase")
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "AUTHSVC_KEY_PASSPHRASE" in lines[0]


# --- atomic writes ------------------------------------------------------------------------------------
def _fake_os(**overrides: Any) -> SimpleNamespace:
    """The os module as store_file sees it, with a few calls replaced."""
    names = {name: getattr(os, name) for name in dir(os) if not name.startswith("__")}
    return SimpleNamespace(**{**names, **overrides})


def test_atomic_write_creates_0600(tmp_path: Path, no_umask: None) -> None:
    target = tmp_path / "file.json"
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert mode(target) == 0o600


def test_atomic_write_keeps_the_old_content_when_replace_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "keyset.json"
    atomic_write(target, b"old")

    def failing_replace(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_file, "os", _fake_os(replace=failing_replace))
    with pytest.raises(OSError):
        atomic_write(target, b"new" * 1000)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["keyset.json"]


def test_atomic_write_keeps_the_old_content_when_a_write_fails_midway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "keyset.json"
    atomic_write(target, b"old")
    calls = 0

    def half_write(fd: int, data: Any) -> int:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise OSError(5, "Input/output error")
        return os.write(fd, bytes(data[: len(data) // 2]))

    monkeypatch.setattr(store_file, "os", _fake_os(write=half_write))
    with pytest.raises(OSError):
        atomic_write(target, b"x" * 4096)
    assert calls == 2
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["keyset.json"]


def test_atomic_write_of_a_new_file_leaves_nothing_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(store_file, "os", _fake_os(fsync=failing_fsync))
    with pytest.raises(OSError):
        atomic_write(tmp_path / "new.pem", b"secret")
    assert list(tmp_path.iterdir()) == []
