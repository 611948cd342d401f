"""Password hashing: argon2id at the OWASP minimum by default, equal cost for every login."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from authsvc.passwords import PasswordHasher
from authsvc.settings import AuthSettings, load_settings
from tests.support import AppHarness

DEFAULT_PREFIX = "$argon2id$v=19$m=19456,t=2,p=1$"


def _defaults() -> dict[str, int]:
    fields = AuthSettings.model_fields
    return {
        name: fields[name].default for name in ("argon2_memory_kib", "argon2_time_cost", "argon2_parallelism")
    }


def test_default_settings_are_the_owasp_minimum() -> None:
    settings = load_settings()
    assert (settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism) == (
        19456,
        2,
        1,
    )
    assert _defaults() == {"argon2_memory_kib": 19456, "argon2_time_cost": 2, "argon2_parallelism": 1}


async def test_default_hash_is_argon2id_at_the_owasp_minimum(harness_factory: Callable[..., Any]) -> None:
    """The one real-cost test: a user stored and checked with the default parameters."""
    harness: AppHarness = await harness_factory(**_defaults())
    await harness.add_user()
    stored = (await harness.services.users.by_username("alice")).password_hash
    assert stored.startswith(DEFAULT_PREFIX)
    assert "correct horse" not in stored
    response = await harness.login()
    assert response.status_code == 200
    # nothing to re-hash: the parameters did not change
    assert (await harness.services.users.by_username("alice")).password_hash == stored


async def test_hashes_are_salted(harness: AppHarness) -> None:
    await harness.add_user("alice", "same password")
    await harness.add_user("bob", "same password")
    a = (await harness.services.users.by_username("alice")).password_hash
    b = (await harness.services.users.by_username("bob")).password_hash
    assert a.startswith("$argon2id$")
    assert a != b


class VerifySpy:
    """Counts PasswordHasher._verify calls and records the hashes they were given."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self.hashes: list[str] = []
        self._real = hasher._verify

    def __call__(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        self.hashes.append(password_hash)
        return self._real(password, password_hash)


@pytest.fixture
async def spied(harness: AppHarness, monkeypatch: pytest.MonkeyPatch) -> tuple[AppHarness, VerifySpy]:
    await harness.add_user()
    await harness.add_user("carol", "carol pw", disabled=True)
    spy = VerifySpy(harness.services.hasher)
    monkeypatch.setattr(harness.services.hasher, "_verify", spy)
    return harness, spy


@pytest.mark.parametrize(
    ("username", "password", "status"),
    [
        ("nobody", "correct horse", 400),  # unknown user: checked against a dummy hash
        ("alice", "wrong", 400),
        ("carol", "carol pw", 400),  # disabled
        ("alice", "correct horse", 200),
    ],
)
async def test_every_login_runs_exactly_one_verify(
    spied: tuple[AppHarness, VerifySpy], username: str, password: str, status: int
) -> None:
    harness, spy = spied
    response = await harness.login(username, password)
    assert response.status_code == status
    assert len(spy.hashes) == 1


async def test_dummy_hash_has_the_configured_cost(spied: tuple[AppHarness, VerifySpy]) -> None:
    harness, spy = spied
    await harness.login("nobody", "pw")
    await harness.login("alice", "wrong")
    dummy, real = spy.hashes
    assert dummy != real
    configured = harness.settings
    m, t, p = configured.argon2_memory_kib, configured.argon2_time_cost, configured.argon2_parallelism
    params = f"$argon2id$v=19$m={m},t={t},p={p}$"
    assert dummy.startswith(params)
    assert real.startswith(params)


async def test_requests_without_credentials_run_no_hash(spied: tuple[AppHarness, VerifySpy]) -> None:
    harness, spy = spied
    await harness.client.post("/token", data={"grant_type": "password", "username": "alice"})
    await harness.client.post("/token", data={"grant_type": "password", "password": "x"})
    assert spy.hashes == []


async def test_unreadable_stored_hash_is_a_failed_login(harness: AppHarness) -> None:
    user = await harness.add_user()
    for garbage in ("not-a-hash", "$argon2id$v=19$m=64,t=1,p=1$broken", "$2b$12$" + "a" * 53):
        await harness.services.users.set_password_hash(user.id, garbage, harness.clock.now())
        response = await harness.login()
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"


async def test_hashing_is_bounded_by_the_cores(harness: AppHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    """At most one hash per core at a time; the event loop stays free meanwhile."""
    import os

    await harness.add_user()
    running = 0
    peak = 0
    lock = threading.Lock()
    real = harness.services.hasher._verify

    def slow_verify(password: str, password_hash: str) -> tuple[bool, str | None]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            time.sleep(0.05)
            return real(password, password_hash)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(harness.services.hasher, "_verify", slow_verify)
    cores = os.cpu_count() or 1
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    tick_task = asyncio.create_task(ticker())
    try:
        responses = await asyncio.gather(*(harness.login() for _ in range(cores + 3)))
    finally:
        tick_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tick_task
    assert all(r.status_code == 200 for r in responses)
    assert 1 <= peak <= cores
    assert ticks > 5  # the loop kept running while hashes ran in threads
