"""AUTHSVC_KEY_STORE=database on SQLite and PostgreSQL: same timetable, shared without files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select

from authsvc.clock import FrozenClock
from authsvc.errors import KeyStoreError
from authsvc.keys.rotation import create_first_key, revoke_key, rotate
from authsvc.keys.setup import lifetimes
from authsvc.keys.store_db import DatabaseKeyStore
from authsvc.store.sql.engine import sync_url
from authsvc.store.sql.tables import private_keys
from tests.support import AppHarness, run_cli, server_env

PASSPHRASE = "correct horse battery staple"
ROOT = Path(__file__).resolve().parent.parent


async def test_server_signs_with_keys_from_the_database(db_harness_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    h: AppHarness = await db_harness_factory(key_store="database", key_passphrase=PASSPHRASE)
    assert not (tmp_path / "keys").exists(), "the database store writes no key files"
    await h.add_user()
    tokens = (await h.login()).json()
    assert (await h.me(tokens["access_token"])).status_code == 200
    kid = h.services.keys.signing_key().kid
    jwks = (await h.client.get("/.well-known/jwks.json")).json()
    standby = h.services.keys.status()["standby_kid"]
    assert standby is not None
    assert [k["kid"] for k in jwks["keys"]] == [kid, standby]
    # private keys are stored encrypted
    url, args = sync_url(h.settings.database_url)
    engine = create_engine(url, connect_args=args)
    with engine.connect() as conn:
        pems = conn.execute(select(private_keys.c.pem)).scalars().all()
    engine.dispose()
    assert pems
    assert all(p.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----") for p in pems)


async def test_rotation_and_revocation_in_one_transaction(db_harness_factory) -> None:  # type: ignore[no-untyped-def]
    h: AppHarness = await db_harness_factory(
        key_store="database", key_passphrase=PASSPHRASE, signing_alg="EdDSA", key_standby=False
    )
    store = h.services.key_watcher.store
    assert isinstance(store, DatabaseKeyStore)
    clock = FrozenClock(h.clock.now())
    life = lifetimes(h.settings)
    changes = rotate(store, life, clock, "EdDSA", PASSPHRASE.encode(), force=True)
    assert [c.action for c in changes] == ["created"]
    assert rotate(store, life, clock, "EdDSA", PASSPHRASE.encode(), force=True) == []
    doc = store.read()
    assert len(doc.keys) == 2
    first, second = sorted(doc.keys, key=lambda k: k.sign_from)
    assert store.private_kids() == {first.kid, second.kid}
    revoked = revoke_key(store, first.kid, clock, "EdDSA", PASSPHRASE.encode())
    assert [c.action for c in revoked][:2] == ["revoked", "signing"]
    assert store.private_kids() == {second.kid}
    h.services.key_watcher.poll()
    assert h.services.keys.signing_key().kid == second.kid


def test_failed_write_leaves_the_store_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = DatabaseKeyStore(f"sqlite:///{tmp_path / 'k.db'}")
    import asyncio

    from authsvc.migrations import upgrade
    from authsvc.store.sql.engine import create_engine as create_async

    async def migrate() -> None:
        engine = create_async(f"sqlite:///{tmp_path / 'k.db'}")
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(migrate())
    clock = FrozenClock()
    create_first_key(store, "EdDSA", clock, b"pw")
    before = store.read()

    def broken(self: DatabaseKeyStore, doc: object) -> None:
        raise KeyStoreError("injected failure while writing the manifest")

    monkeypatch.setattr(DatabaseKeyStore, "write", broken)
    with pytest.raises(KeyStoreError):
        rotate(store, lifetimes_for_tests(), clock, "EdDSA", b"pw", force=True)
    monkeypatch.undo()
    assert store.read() == before
    assert store.private_kids() == {k.kid for k in before.keys}, "the new private key was rolled back too"
    store.dispose()


def lifetimes_for_tests():  # type: ignore[no-untyped-def]
    from authsvc.keys.timetable import Lifetimes

    return Lifetimes(
        access_ttl=60, refresh_ttl=600, skew=5, rotation_period=100, prepublish=10, jwks_max_age=5
    )


def test_cron_script_and_cli_work_against_the_database_store(database_url: str, tmp_path: Path) -> None:
    env = server_env(tmp_path, database_url=database_url, key_store="database", key_passphrase=PASSPHRASE)
    # serve migrates and creates the first key; emulate with the CLI and the library call
    assert run_cli("db", "upgrade", env=env).returncode == 0
    # the store refuses to rotate before serve made the first key
    empty = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "rotate_keys.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert empty.returncode == 1, empty.stderr
    assert "empty" in empty.stderr
    from authsvc.keys.setup import build_key_store
    from authsvc.settings import AuthSettings

    settings = AuthSettings(database_url=database_url, key_store="database", key_passphrase=PASSPHRASE)
    store = build_key_store(settings)
    create_first_key(store, "RS256", FrozenClock(__import__("time").time()), PASSPHRASE.encode())
    forced = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "rotate_keys.py"), "--force"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.startswith("created ")
    listing = run_cli("keys", "list", env=env)
    assert listing.returncode == 0, listing.stderr
    assert "signing" in listing.stdout
    assert "pending" in listing.stdout
    store.dispose()


def test_database_store_needs_a_passphrase(tmp_path: Path) -> None:
    env = server_env(tmp_path, key_store="database")
    result = run_cli("keys", "list", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("authsvc: AUTHSVC_KEY_PASSPHRASE")
    assert httpx  # imported for symmetry with other live tests
