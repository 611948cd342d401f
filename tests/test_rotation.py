"""Rotation runs on a real key store: concurrency, file modes, the key ring and its watcher, the app.

The rotation code runs in-process with a FrozenClock where time matters; the
concurrency test runs the real script five times at once.
"""

from __future__ import annotations

import itertools
import logging
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from authsvc.clock import FrozenClock
from authsvc.errors import KeyStoreError
from authsvc.keys.jwks import JwksDocument, JwksPublisher
from authsvc.keys.plan import PROPAGATION
from authsvc.keys.ring import KeyRing, LoadedKey
from authsvc.keys.rotation import create_first_key, revoke_key, rotate
from authsvc.keys.store_file import FileKeyStore
from authsvc.keys.timetable import KeyState, Lifetimes, Timetable
from authsvc.keys.watcher import KeyWatcher
from tests.support import AppHarness
from tests.test_rotation_cli import SCRIPT, busy_store, keys_dir, keys_env, store_doc

T = 1_800_000_000.0
LT = Lifetimes(access_ttl=30, refresh_ttl=100, skew=2, rotation_period=100, prepublish=10, jwks_max_age=5)
LEAD = LT.prepublish + PROPAGATION
JWKS = "/.well-known/jwks.json"


def assert_private_modes(directory: Path) -> None:
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for path in directory.iterdir():
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path.name} is readable by group or others ({oct(mode)})"
    assert not [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def store(tmp_path: Path) -> FileKeyStore:
    return FileKeyStore(tmp_path / "keys")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T)


@pytest.fixture
def umask_zero() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# --- several processes at once ----------------------------------------------------------------
@pytest.mark.parametrize("standby", ["false", "true"])
def test_five_concurrent_runs_change_the_store_once(tmp_path: Path, standby: str) -> None:
    env = keys_env(tmp_path, key_standby=standby)
    a, b, c = busy_store(env)
    procs = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), "--force"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(5)
    ]
    outputs = []
    for proc in procs:
        with proc:
            out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert err == ""
        outputs.extend(out.splitlines())
    # one run did everything, the others found nothing to do (with a standby: one more key)
    extra = 1 if standby == "true" else 0
    assert len(outputs) == 3 + extra, outputs
    assert len([line for line in outputs if line.startswith("created ")]) == 1 + extra
    assert len([line for line in outputs if line.startswith(f"prune {a.kid}")]) == 1
    assert len([line for line in outputs if line.startswith(f"destroy-private {b.kid}")]) == 1
    doc = store_doc(env)
    assert [k.kid for k in doc.keys][:2] == [b.kid, c.kid]
    assert len(doc.keys) == 3 + extra
    table = Timetable(doc.keys, Lifetimes(30, 60, 0, 20, 5, 1))
    now = time.time()
    expected = [KeyState.RETIRING, KeyState.SIGNING, KeyState.PENDING] + [KeyState.STANDBY] * extra
    assert [table.state(k, now) for k in doc.keys] == expected
    assert FileKeyStore(keys_dir(env)).private_kids() == {c.kid, *(k.kid for k in doc.keys[2:])}
    assert_private_modes(keys_dir(env))


# --- files on disk --------------------------------------------------------------------------------
def test_files_are_private_whatever_the_umask(
    store: FileKeyStore, clock: FrozenClock, umask_zero: None
) -> None:
    assert create_first_key(store, "EdDSA", clock, None) is not None
    os.chmod(store.directory, 0o755)  # a careless operator; the next writer tightens it
    rotate(store, LT, clock, "EdDSA", None, force=True)
    assert_private_modes(store.directory)
    assert len(store.private_kids()) == 2


def test_private_keys_are_encrypted_with_the_passphrase(store: FileKeyStore, clock: FrozenClock) -> None:
    create_first_key(store, "EdDSA", clock, b"correct horse")
    rotate(store, LT, clock, "EdDSA", b"correct horse", force=True)
    for kid in store.private_kids():
        pem = store.read_private(kid)
        assert pem is not None
        assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    manager = Keys(store, clock, "EdDSA", b"correct horse")
    manager.load()
    assert manager.signing_key().kid == store.read().keys[0].kid
    with pytest.raises(KeyStoreError, match="PASSPHRASE"):
        Keys(store, clock, "EdDSA", b"wrong").load()


def test_rotation_refuses_a_missing_store_and_creates_nothing(
    store: FileKeyStore, clock: FrozenClock
) -> None:
    for run in (
        lambda: rotate(store, LT, clock, "EdDSA", None),
        lambda: rotate(store, LT, clock, "EdDSA", None, force=True, dry_run=True),
    ):
        with pytest.raises(KeyStoreError, match="empty"):
            run()
    assert not store.directory.exists()


def test_only_the_first_call_creates_the_first_key(store: FileKeyStore, clock: FrozenClock) -> None:
    change = create_first_key(store, "EdDSA", clock, None)
    assert change is not None
    assert "first key, signing now" in str(change)
    clock.advance(5)
    assert create_first_key(store, "RS256", clock, None) is None
    (record,) = store.read().keys
    assert (record.created_at, record.sign_from, record.alg) == (T, T, "EdDSA")


def test_leftovers_of_a_crash_are_removed_by_the_next_run(store: FileKeyStore, clock: FrozenClock) -> None:
    create_first_key(store, "EdDSA", clock, None)
    orphan = "O" * 43
    (store.directory / f"{orphan}.pem").write_bytes(b"half a rotation")
    (store.directory / ".keyset.json.999.tmp").write_bytes(b"{")
    assert rotate(store, LT, clock, "EdDSA", None) == []
    assert store.private_kids() == {store.read().keys[0].kid}
    assert not list(store.directory.glob(".*.tmp"))


# --- the manager -------------------------------------------------------------------------------------
class Keys:
    """A process's key ring, its watcher and its JWKS document, as a server holds them."""

    def __init__(self, store: FileKeyStore, clock: FrozenClock, alg: str, passphrase: bytes | None = None):
        self.ring = KeyRing(LT, clock, alg)
        self.watcher = KeyWatcher(store, self.ring, passphrase)
        self.publisher = JwksPublisher(self.ring)
        self.load = self.watcher.load
        self.refresh = self.watcher.poll
        self.status = self.ring.status

    def signing_key(self) -> LoadedKey:
        return self.ring.signing_key()

    def access_key(self, kid: str) -> LoadedKey | None:
        return self.ring.access_token_key(kid)

    def refresh_key(self, kid: str) -> LoadedKey | None:
        return self.ring.refresh_token_key(kid)

    def jwks(self) -> JwksDocument:
        return self.publisher.document()


def manager_for(store: FileKeyStore, clock: FrozenClock, alg: str = "EdDSA") -> Keys:
    manager = Keys(store, clock, alg)
    manager.load()
    return manager


def test_manager_follows_the_timetable_through_a_rotation(
    store: FileKeyStore, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    create_first_key(store, "EdDSA", clock, None)
    manager = manager_for(store, clock)
    first = manager.signing_key().kid
    jwks = manager.jwks()
    assert jwks.max_age == LT.jwks_max_age
    assert manager.status()["rotation_overdue"] is False

    assert not [r for r in caplog.records if "overdue" in r.getMessage()]
    clock.advance(LT.rotation_period)
    assert manager.status()["rotation_overdue"] is True
    with caplog.at_level(logging.WARNING, logger="authsvc.keys"):
        assert manager.signing_key().kid == first  # keeps signing without a successor
        assert manager.signing_key().kid == first
    overdue = [r for r in caplog.records if "rotation overdue" in r.getMessage()]
    assert len(overdue) == 1  # logged once per key, not per request
    assert first in overdue[0].getMessage()

    (created,) = rotate(store, LT, clock, "EdDSA", None)
    second = created.kid
    manager.load()
    assert manager.status()["rotation_overdue"] is False
    assert manager.signing_key().kid == first
    assert manager.jwks().etag != jwks.etag  # a new key, a new ETag
    assert manager.access_key(second) is None  # signed nothing yet

    clock.advance(LEAD)
    assert manager.signing_key().kid == second
    assert manager.access_key(first) is not None
    changes = rotate(store, LT, clock, "EdDSA", None)
    assert [c.action for c in changes] == ["destroy-private"]
    assert not (store.directory / f"{first}.pem").exists()
    manager.load()
    assert manager.signing_key().kid == second
    # published until the last access token it signed has expired (+ skew), then gone
    unpublish = T + LT.rotation_period + LEAD + LT.access_ttl + LT.skew
    clock.set(unpublish - 4.5)
    assert manager.jwks().max_age == 4
    assert first in manager.jwks().body.decode()
    clock.set(unpublish - 0.2)
    assert manager.jwks().max_age == 1
    clock.set(unpublish)
    assert first not in manager.jwks().body.decode()
    assert manager.access_key(first) is None
    assert manager.refresh_key(first) is not None  # refresh tokens it signed may live on
    clock.set(unpublish - LT.access_ttl + LT.refresh_ttl)
    assert manager.refresh_key(first) is None
    assert [c.action for c in rotate(store, LT, clock, "EdDSA", None)] == ["created", "prune"]


def test_manager_sees_a_store_change_within_a_second(store: FileKeyStore, clock: FrozenClock) -> None:
    create_first_key(store, "EdDSA", clock, None)
    calls = []
    version = store.version

    def counting_version() -> Any:
        calls.append(time.monotonic())
        return version()

    store.version = counting_version  # type: ignore[method-assign]
    manager = manager_for(store, clock)
    (changed,) = revoke_key(store, store.read().keys[0].kid, clock, "EdDSA", None)[:1]
    deadline = time.monotonic() + 1.0
    seen = None
    while time.monotonic() < deadline + 0.05:
        manager.refresh()
        if manager.signing_key().kid != changed.kid:
            seen = time.monotonic()
            break
        time.sleep(0.02)
    assert seen is not None, "the manager did not notice the store change within a second"
    # the hot path looked at the store at most once a second
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert all(gap >= 0.99 for gap in gaps[1:]), gaps


def test_a_server_signs_with_the_stores_key_whatever_its_setting(
    store: FileKeyStore, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    create_first_key(store, "EdDSA", clock, None)
    with caplog.at_level(logging.WARNING, logger="authsvc.keys"):
        manager = manager_for(store, clock, alg="RS256")
    assert manager.signing_key().alg == "EdDSA"
    assert any("EdDSA" in r.getMessage() and "RS256" in r.getMessage() for r in caplog.records)
    # the next run (with that setting) publishes an RS256 key that signs KEY_PREPUBLISH later
    (created,) = rotate(store, LT, clock, "RS256", None)
    assert "RS256, algorithm changes from EdDSA" in created.detail
    manager.load()
    assert manager.signing_key().alg == "EdDSA"
    clock.advance(LEAD)
    assert manager.signing_key().alg == "RS256"
    assert manager.signing_key().kid == created.kid


def test_revoke_semantics(store: FileKeyStore, clock: FrozenClock) -> None:
    create_first_key(store, "EdDSA", clock, None)
    first = store.read().keys[0].kid
    clock.advance(1)
    (pending,) = rotate(store, LT, clock, "EdDSA", None, force=True)
    manager = manager_for(store, clock)
    # the signing key is revoked: the pending successor signs at once
    clock.advance(1)
    changes = revoke_key(store, first, clock, "EdDSA", None)
    assert [(c.action, c.kid) for c in changes] == [("revoked", first), ("signing", pending.kid)]
    manager.load()
    assert manager.signing_key().kid == pending.kid
    assert manager.access_key(first) is None
    assert manager.refresh_key(first) is None
    assert first not in manager.jwks().body.decode()
    assert not (store.directory / f"{first}.pem").exists()
    # a pending key is revoked: the signing key keeps its slot (and asks for a successor)
    clock.advance(LT.rotation_period)
    (next_key,) = rotate(store, LT, clock, "EdDSA", None)
    revoke_key(store, next_key.kid, clock, "EdDSA", None)
    manager.load()
    clock.advance(2 * LEAD)
    assert manager.signing_key().kid == pending.kid
    assert manager.status()["rotation_overdue"] is True
    # without a pending successor, a new key signs at once
    changes = revoke_key(store, pending.kid, clock, "EdDSA", None)
    assert [c.action for c in changes] == ["revoked", "created"]
    manager.load()
    assert manager.signing_key().kid == changes[1].kid
    with pytest.raises(KeyStoreError):
        revoke_key(store, "N" * 43, clock, "EdDSA", None)
    assert revoke_key(store, pending.kid, clock, "EdDSA", None) == []


# --- the app ---------------------------------------------------------------------------------------------
KEY_SETTINGS: dict[str, Any] = {
    "key_standby": False,  # the timetable without a standby; tests/test_key_standby.py has the default
    "key_rotation_period": 100,
    "key_prepublish": 10,
    "jwks_max_age": 5,
    "access_token_ttl": 30,
    "refresh_token_ttl": 100,
    "clock_skew": 2,
    "signing_alg": "EdDSA",
}


def header(token: str) -> dict[str, Any]:
    return jwt.get_unverified_header(token)


async def test_app_rotates_without_a_failed_verification(harness_factory: Callable[..., Any]) -> None:
    h: AppHarness = await harness_factory(**KEY_SETTINGS)
    await h.add_user()
    store = FileKeyStore(h.settings.keys_dir)
    first = (await h.client.get(JWKS)).json()["keys"][0]["kid"]
    tokens = (await h.login()).json()
    assert header(tokens["access_token"])["kid"] == first

    h.clock.advance(1)
    response = await h.client.get(JWKS)
    etag = response.headers["etag"]
    (created,) = rotate(store, LT, h.clock, "EdDSA", None, force=True)
    h.services.key_watcher.load()  # what refresh() does within a second
    response = await h.client.get(JWKS, headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert response.headers["etag"] != etag
    assert [k["kid"] for k in response.json()["keys"]] == [first, created.kid]
    assert response.headers["cache-control"] == "public, max-age=5"

    h.clock.advance(LEAD)
    newer = (await h.refresh(tokens["refresh_token"])).json()
    assert header(newer["access_token"])["kid"] == created.kid
    assert header(newer["refresh_token"])["kid"] == created.kid
    assert (await h.me(tokens["access_token"])).status_code == 200  # the old key's token still verifies
    unpublish = T + 1 + LEAD + 30 + 2
    h.clock.set(unpublish - 3.5)
    response = await h.client.get(JWKS)
    assert response.headers["cache-control"] == "public, max-age=3"
    h.clock.set(unpublish)
    response = await h.client.get(JWKS)
    assert [k["kid"] for k in response.json()["keys"]] == [created.kid]
    assert response.headers["cache-control"] == "public, max-age=5"


async def test_refresh_token_of_a_key_gone_from_the_jwks_still_works(
    harness_factory: Callable[..., Any],
) -> None:
    h: AppHarness = await harness_factory(**KEY_SETTINGS)
    await h.add_user()
    store = FileKeyStore(h.settings.keys_dir)
    tokens = (await h.login()).json()
    rotate(store, LT, h.clock, "EdDSA", None, force=True)
    h.clock.advance(LEAD + 30 + 2 + 1)  # the first key left the JWKS
    rotate(store, LT, h.clock, "EdDSA", None)
    h.services.key_watcher.load()
    assert len((await h.client.get(JWKS)).json()["keys"]) == 1
    response = await h.refresh(tokens["refresh_token"])
    assert response.status_code == 200, response.text


async def test_app_signs_with_the_stores_key_whatever_its_setting(
    harness_factory: Callable[..., Any],
) -> None:
    eddsa: AppHarness = await harness_factory(**KEY_SETTINGS)
    rs256: AppHarness = await harness_factory(**{**KEY_SETTINGS, "signing_alg": "RS256"})
    await rs256.add_user()
    token = (await rs256.login()).json()["access_token"]
    (key,) = (await eddsa.client.get(JWKS)).json()["keys"]
    assert header(token)["alg"] == "EdDSA"
    assert header(token)["kid"] == key["kid"]
    assert (await rs256.me(token)).status_code == 200
