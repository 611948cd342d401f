"""Passphrase-protected keys (issue #13, findings 7 and 8), through the real surface.

Finding 7: private keys at rest are PBES2 / PBKDF2-HMAC-SHA256 with at least
600,000 iterations / AES-256-CBC (the PEM's own ASN.1 is read to prove it);
keys written by the previous code (2,048 iterations) are re-encrypted by the
next rotation or revocation; a passphrase under 16 characters stops every
command with one line.

Finding 8: a mistyped passphrase makes every command exit 1 with one line
before it writes anything (the attack: ``rotate_keys.py --force`` with a typo
on the database store exited 0 and published a key no server could load); and
a key one server cannot open (written with another passphrase, simulated
below through the store's own write calls) never stops ``/token`` while a
loadable key signs: ``/readyz`` and ``authsvc_keys_unloadable`` report it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import pem as asn1_pem
from cryptography.hazmat.primitives import serialization

from authsvc.clock import SystemClock
from authsvc.keys import watcher as watcher_module
from authsvc.keys.generate import generate_key, private_pem
from authsvc.keys.model import KeyRecord, KeySetDoc
from authsvc.keys.rotation import create_first_key, rotate
from authsvc.keys.setup import lifetimes
from authsvc.keys.store_db import DatabaseKeyStore
from authsvc.keys.store_file import FileKeyStore, atomic_write
from authsvc.store.sql.engine import sync_url
from tests.support import (
    AppHarness,
    LiveServer,
    free_port,
    fresh_postgres_database,
    run_cli,
    server_env,
    wait_for_key_poll,
)

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "rotate_keys.py"
PASSPHRASE = "correct horse battery staple"
TYPO = "correct horse battery stapel"
MIN_ITERATIONS = 600_000
SECRET_LINE = re.compile(r"client secret \(shown once, store it now\): (\S+)")


# --- reading a PEM's encryption -------------------------------------------------------------------
def kdf_of(pem: bytes) -> dict[str, Any]:
    """The PKCS#8 EncryptedPrivateKeyInfo's algorithms and iteration count, from its ASN.1."""
    kind, _headers, der = asn1_pem.unarmor(pem)
    assert kind == "ENCRYPTED PRIVATE KEY", kind
    algorithm = asn1_keys.EncryptedPrivateKeyInfo.load(der)["encryption_algorithm"]
    kdf = algorithm["parameters"]["key_derivation_func"]
    params = kdf["parameters"]
    return {
        "scheme": algorithm["algorithm"].native,
        "kdf": kdf["algorithm"].native,
        "iterations": params["iteration_count"].native,
        "prf": params["prf"]["algorithm"].native,
        "cipher": algorithm["parameters"]["encryption_scheme"]["algorithm"].native,
    }


def assert_strong(pem: bytes) -> None:
    found = kdf_of(pem)
    assert found["scheme"] == "pbes2" and found["kdf"] == "pbkdf2", found
    assert found["iterations"] >= MIN_ITERATIONS, found
    assert (found["prf"], found["cipher"]) == ("sha256", "aes256_cbc"), found
    serialization.load_pem_private_key(pem, PASSPHRASE.encode())


def database_pems(database_url: str) -> dict[str, bytes]:
    from sqlalchemy import create_engine, select

    from authsvc.store.sql.tables import private_keys

    url, args = sync_url(database_url)
    engine = create_engine(url, connect_args=args)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(private_keys.c.kid, private_keys.c.pem)).all()
    finally:
        engine.dispose()
    return {row.kid: row.pem.encode() for row in rows}


# --- finding 7: the KDF ----------------------------------------------------------------------------
async def test_file_keys_use_600k_pbkdf2_sha256_and_aes256(harness_factory: Callable[..., Any]) -> None:
    h: AppHarness = await harness_factory(key_passphrase=PASSPHRASE, signing_alg="EdDSA")
    pems = sorted(h.settings.keys_dir.glob("*.pem"))
    for path in pems:
        assert_strong(path.read_bytes())
    assert len(pems) == 2  # the signing key and the standby
    manifest = json.loads((h.settings.keys_dir / "keyset.json").read_text())
    assert {k["encryption"] for k in manifest["keys"]} == {f"pbes2-pbkdf2-sha256-{MIN_ITERATIONS}-aes256cbc"}


async def test_database_keys_use_600k_pbkdf2_sha256_and_aes256(
    db_harness_factory: Callable[..., Any],
) -> None:
    h: AppHarness = await db_harness_factory(key_store="database", key_passphrase=PASSPHRASE)
    pems = database_pems(h.settings.database_url)
    for pem in pems.values():
        assert_strong(pem)
    assert len(pems) == 2


def legacy_record(kid: str, alg: str, jwk: dict[str, Any], now: float, sign_from: float) -> dict[str, Any]:
    """A manifest record as the previous code wrote it: no ``standby``, no ``encryption``."""
    return {
        "kid": kid,
        "alg": alg,
        "public_jwk": jwk,
        "created_at": now,
        "sign_from": sign_from,
        "revoked_at": None,
        "private_deleted_at": None,
    }


def legacy_pem(key: Any) -> bytes:
    """What the previous code wrote: BestAvailableEncryption, PBKDF2 at 2,048 iterations."""
    encryption = serialization.BestAvailableEncryption(PASSPHRASE.encode())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    assert kdf_of(pem)["iterations"] == 2048
    return pem  # type: ignore[no-any-return]


def legacy_file_store(directory: Path, *sign_from: float) -> list[str]:
    store = FileKeyStore(directory)
    store.ensure_directory()
    now = time.time()
    records, kids = [], []
    for offset in sign_from:
        generated = generate_key("EdDSA")
        store.write_private(generated.kid, legacy_pem(generated.private_key))
        records.append(legacy_record(generated.kid, "EdDSA", generated.public_jwk, now, now + offset))
        kids.append(generated.kid)
    data = json.dumps({"version": 1, "generation": 1, "keys": records}).encode()
    atomic_write(directory / "keyset.json", data)
    return kids


def test_an_old_2048_iteration_key_is_reencrypted_by_the_next_rotation(tmp_path: Path) -> None:
    env = server_env(tmp_path, key_passphrase=PASSPHRASE, signing_alg="EdDSA")
    directory = Path(env["AUTHSVC_KEYS_DIR"])
    (kid,) = legacy_file_store(directory, 0)
    line = f"re-encrypt {kid} private key now pbes2-pbkdf2-sha256-600000-aes256cbc"
    planned = run_script("--dry-run", env=env)
    assert planned.returncode == 0, planned.stderr
    assert f"would {line}" in planned.stdout.splitlines()
    assert kdf_of((directory / f"{kid}.pem").read_bytes())["iterations"] == 2048  # a dry run writes nothing

    result = run_script(env=env)
    assert result.returncode == 0, result.stderr
    assert line in result.stdout.splitlines()  # (beside the standby an old store gets)
    assert_strong((directory / f"{kid}.pem").read_bytes())
    record = FileKeyStore(directory).read().find(kid)
    assert record is not None and record.encryption == "pbes2-pbkdf2-sha256-600000-aes256cbc"
    assert run_script(env=env).stdout == ""  # done once
    listing = run_cli("keys", "list", env=env)
    assert listing.returncode == 0 and kid in listing.stdout, listing.stderr


def test_a_revocation_reencrypts_the_keys_it_keeps(tmp_path: Path) -> None:
    env = server_env(tmp_path, key_passphrase=PASSPHRASE, signing_alg="EdDSA")
    directory = Path(env["AUTHSVC_KEYS_DIR"])
    signing, pending = legacy_file_store(directory, 0, 3600)
    result = run_cli("keys", "revoke", pending, env=env)
    assert result.returncode == 0, result.stderr
    assert_strong((directory / f"{signing}.pem").read_bytes())
    assert not (directory / f"{pending}.pem").exists()


def test_database_keys_of_the_previous_code_are_reencrypted(database_url: str, tmp_path: Path) -> None:
    env = server_env(
        tmp_path,
        database_url=database_url,
        key_store="database",
        key_passphrase=PASSPHRASE,
        signing_alg="EdDSA",
    )
    assert run_cli("db", "upgrade", env=env).returncode == 0
    store = DatabaseKeyStore(database_url)
    generated = generate_key("EdDSA")
    now = time.time()
    with store.lock():
        store.write_private(generated.kid, legacy_pem(generated.private_key))
        store.write(
            KeySetDoc(
                keys=(
                    KeyRecord.from_json(
                        legacy_record(generated.kid, "EdDSA", generated.public_jwk, now, now)
                    ),
                ),
                generation=1,
            )
        )
    store.dispose()
    result = run_cli("keys", "rotate", env=env)
    assert result.returncode == 0, result.stderr
    assert f"re-encrypt {generated.kid}" in result.stdout
    assert "standby" in result.stdout  # an old store also gets its standby
    pems = database_pems(database_url)
    assert len(pems) == 2
    for pem in pems.values():
        assert_strong(pem)


# --- finding 7: passphrase length ----------------------------------------------------------------------
@pytest.mark.parametrize("command", [("keys", "list"), ("serve", "--port", "0"), ("script",)])
def test_a_passphrase_under_16_characters_stops_the_program_with_one_line(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    env = server_env(tmp_path, key_passphrase="fifteen chars!!")
    assert len(env["AUTHSVC_KEY_PASSPHRASE"]) == 15
    result = run_script(env=env) if command == ("script",) else run_cli(*command, env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "AUTHSVC_KEY_PASSPHRASE" in lines[0] and "16" in lines[0]
    assert not Path(env["AUTHSVC_KEYS_DIR"]).exists(), "nothing may be written"


def test_an_empty_passphrase_means_unset(tmp_path: Path) -> None:
    env = server_env(tmp_path, key_passphrase="")
    create_first_key(FileKeyStore(Path(env["AUTHSVC_KEYS_DIR"])), "EdDSA", SystemClock(), None)
    result = run_cli("keys", "list", env=env)
    assert result.returncode == 0, result.stderr


# --- finding 8a: the check before any write -----------------------------------------------------------
def run_script(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def store_snapshot(env: dict[str, str]) -> Any:
    if env.get("AUTHSVC_KEY_STORE") == "database":
        store = DatabaseKeyStore(env["AUTHSVC_DATABASE_URL"])
        try:
            return store.read(), database_pems(env["AUTHSVC_DATABASE_URL"])
        finally:
            store.dispose()
    directory = Path(env["AUTHSVC_KEYS_DIR"])
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.name != ".lock"}


@pytest.fixture(params=["file", "sqlite", "postgresql"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Settings of a key store of each kind, with the passphrase."""
    settings = {"key_passphrase": PASSPHRASE, "signing_alg": "EdDSA"}
    if request.param == "file":
        yield settings
        return
    settings["key_store"] = "database"
    if request.param == "sqlite":
        yield {**settings, "database_url": f"sqlite:///{tmp_path / 'keys.db'}"}
        return
    url, drop = fresh_postgres_database()
    try:
        yield {**settings, "database_url": url}
    finally:
        drop()


def assert_refused(result: subprocess.CompletedProcess[str], what: str) -> None:
    assert result.returncode == 1, f"{what}: exit {result.returncode}, {result.stdout!r} {result.stderr!r}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, f"{what}: {result.stderr}"
    assert "AUTHSVC_KEY_PASSPHRASE" in lines[0], f"{what}: {lines[0]}"
    assert result.stdout == "", f"{what} printed {result.stdout!r}"


def test_a_mistyped_passphrase_changes_nothing_and_exits_1(
    live_server_factory: Callable[..., LiveServer], store_settings: dict[str, str], tmp_path: Path
) -> None:
    """The attack of finding 8: ``rotate_keys.py --force`` with a typo published an unloadable key."""
    server = live_server_factory(**store_settings)
    signing = httpx.get(server.url + "/readyz", timeout=10).json()["signing_kid"]
    typo = {**server.env, "AUTHSVC_KEY_PASSPHRASE": TYPO}
    before = store_snapshot(server.env)
    assert_refused(run_script("--force", env=typo), "rotate_keys.py --force")
    assert_refused(run_script("--force", "--dry-run", env=typo), "rotate_keys.py --dry-run")
    assert_refused(run_script(env=typo), "rotate_keys.py")
    assert_refused(run_cli("keys", "rotate", "--force", env=typo), "keys rotate --force")
    assert_refused(run_cli("keys", "revoke", signing, env=typo), "keys revoke")
    assert_refused(run_cli("keys", "list", env=typo), "keys list")
    assert_refused(run_cli("serve", "--port", str(free_port()), env=typo), "serve")
    assert store_snapshot(server.env) == before, "a refused command wrote to the key store"
    ready = httpx.get(server.url + "/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["unloadable_keys"] == [], ready.text
    # the right passphrase still works
    assert run_script("--force", env=server.env).returncode == 0


@pytest.mark.parametrize(("written_with", "given"), [(PASSPHRASE, None), (None, PASSPHRASE)])
def test_unset_on_encrypted_keys_or_set_on_plaintext_keys_is_the_same_error(
    live_server_factory: Callable[..., LiveServer], written_with: str | None, given: str | None
) -> None:
    server = live_server_factory(
        signing_alg="EdDSA", **({"key_passphrase": written_with} if written_with else {})
    )
    env = {k: v for k, v in server.env.items() if k != "AUTHSVC_KEY_PASSPHRASE"}
    if given:
        env["AUTHSVC_KEY_PASSPHRASE"] = given
    before = store_snapshot(server.env)
    assert_refused(run_script("--force", env=env), "rotate_keys.py --force")
    assert_refused(run_cli("keys", "list", env=env), "keys list")
    assert store_snapshot(server.env) == before


# --- finding 8b: a key this server cannot open ---------------------------------------------------------
def plant_key(env: dict[str, str], passphrase: str, sign_from: float) -> str:
    """A host with another passphrase writes a pending key, as the unchecked code did."""
    if env.get("AUTHSVC_KEY_STORE") == "database":
        store: Any = DatabaseKeyStore(env["AUTHSVC_DATABASE_URL"])
    else:
        store = FileKeyStore(Path(env["AUTHSVC_KEYS_DIR"]))
    generated = generate_key("EdDSA")
    try:
        with store.lock():
            doc = store.read()
            store.write_private(generated.kid, private_pem(generated.private_key, passphrase.encode()))
            record = KeyRecord(
                generated.kid, "EdDSA", generated.public_jwk, created_at=time.time(), sign_from=sign_from
            )
            store.write(KeySetDoc(keys=(*doc.keys, record), generation=doc.generation + 1))
    finally:
        if isinstance(store, DatabaseKeyStore):
            store.dispose()
    return generated.kid


def wait_until(check: Callable[[], bool], what: str, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def service_client(server: LiveServer) -> tuple[str, str]:
    added = server.cli("clients", "add", "svc", "--grant", "client_credentials", "--scope", "read")
    assert added.returncode == 0, added.stderr
    match = SECRET_LINE.search(added.stdout)
    assert match is not None, added.stdout
    return "svc", match.group(1)


def token(server: LiveServer, client: tuple[str, str]) -> httpx.Response:
    return httpx.post(
        server.url + "/token", data={"grant_type": "client_credentials"}, auth=client, timeout=10
    )


def test_a_key_this_server_cannot_open_never_stops_token(
    live_server_factory: Callable[..., LiveServer], store_settings: dict[str, str]
) -> None:
    server = live_server_factory(**store_settings)
    client = service_client(server)
    signing = httpx.get(server.url + "/readyz", timeout=10).json()["signing_kid"]

    takes_over = time.time() + 6
    bad = plant_key(server.env, "another host's passphrase", takes_over)

    def reported() -> bool:
        return httpx.get(server.url + "/readyz", timeout=10).json()["unloadable_keys"] == [bad]

    wait_until(reported, "the unloadable key was not reported in /readyz")
    ready = httpx.get(server.url + "/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["key_store"] == "ok", "one bad key must not make the whole store stale"
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    assert "authsvc_keys_unloadable 1.0" in metrics
    for _ in range(5):
        response = token(server, client)
        assert response.status_code == 200, response.text
        assert jwt.get_unverified_header(response.json()["access_token"])["kid"] == signing
    log = server.log_path.read_text()
    errors = [line for line in log.splitlines() if bad in line and "ERROR" in line.upper()]
    assert len(errors) == 1, errors  # once, not per poll
    assert "PRIVATE KEY" not in log

    # Its turn comes: this server cannot sign with the key the timetable names.
    time.sleep(max(0.0, takes_over - time.time()) + 0.2)
    assert token(server, client).status_code == 503
    assert httpx.get(server.url + "/readyz", timeout=10).status_code == 503

    # The operator revokes it with the right passphrase (the check skips the key revoked).
    revoked = server.cli("keys", "revoke", bad)
    assert revoked.returncode == 0, revoked.stderr
    wait_until(lambda: token(server, client).status_code == 200, "service did not come back after the revoke")
    ready = httpx.get(server.url + "/readyz", timeout=10).json()
    assert ready["unloadable_keys"] == [] and ready["signing_kid"] != bad


# --- the cost of 600,000 iterations stays off the event loop ----------------------------------------
async def test_decrypting_a_published_key_never_runs_on_the_event_loop(
    harness_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request answers while a key load is in progress, and the load ran on a worker thread.

    The key is decrypted when it is published, not when it starts signing.
    """
    h: AppHarness = await harness_factory(key_passphrase=PASSPHRASE, signing_alg="EdDSA", key_standby=False)
    await h.add_user()
    loop_thread = threading.current_thread()
    entered, release = threading.Event(), threading.Event()
    seen: list[tuple[threading.Thread, bool]] = []
    real = watcher_module.load_private_key

    def slow_load(pem: bytes, passphrase: bytes | None) -> Any:
        entered.set()
        released = release.wait(timeout=10)  # on the loop this would stall every request
        seen.append((threading.current_thread(), released))
        return real(pem, passphrase)

    monkeypatch.setattr(watcher_module, "load_private_key", slow_load)
    changes = rotate(
        h.services.key_watcher.store, lifetimes(h.settings), h.clock, "EdDSA", PASSPHRASE.encode(), force=True
    )
    (new,) = [c.kid for c in changes if c.action == "created"]
    for _ in range(200):
        if entered.is_set():
            break
        await asyncio_sleep(0.05)
    assert entered.is_set(), "the published key was not loaded until it signs"
    # The load is in progress; the loop still answers.
    assert (await h.client.get("/healthz")).status_code == 200
    assert (await h.login()).status_code == 200
    assert not seen, "the load finished before the requests: they proved nothing"
    release.set()
    await wait_for_key_poll(h.services)
    assert len(seen) == 1
    assert seen[0][0] is not loop_thread and seen[0][1], "the key was decrypted on the event loop"
    h.clock.advance(h.settings.key_prepublish + 5)  # its turn: no decryption left to do
    response = await h.login()
    assert jwt.get_unverified_header(response.json()["access_token"])["kid"] == new
    assert len(seen) == 1


async def asyncio_sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
