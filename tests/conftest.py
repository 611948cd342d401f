"""Shared fixtures: settings on a temp dir, the ASGI app with its lifespan, a live server.

Every test runs in its own temporary directory with no ``AUTHSVC_`` variables
from the outer environment (``AUTHSVC_TEST_*`` excepted), so a stray ``.env``
or setting on the developer's machine cannot change a result.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from authsvc.app import create_app
from authsvc.clock import FrozenClock
from authsvc.settings import AuthSettings
from tests.support import (
    ISSUER,
    AppHarness,
    LiveServer,
    fresh_postgres_database,
    make_settings,
    start_server,
    stop_server,
)

hypothesis_settings.register_profile(
    "ci", deadline=None, max_examples=50, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.register_profile("dev", deadline=None, max_examples=25)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("AUTHSVC_") and not name.upper().startswith("AUTHSVC_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., AuthSettings]:
    return lambda **overrides: make_settings(tmp_path, **overrides)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(1_800_000_000.0)


@pytest.fixture
async def harness_factory(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Callable[..., Any]]:
    """Build an app harness with setting overrides: ``h = await harness_factory(signing_alg="EdDSA")``."""
    stack: list[Any] = []

    async def build(**overrides: Any) -> AppHarness:
        settings = make_settings(tmp_path, **overrides)
        app = create_app(settings, clock)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        stack.append(lifespan)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ISSUER)
        stack.append(client)
        return AppHarness(client, app.state.services, clock, settings, app)

    yield build
    for item in reversed(stack):
        await item.__aexit__(None, None, None)


@pytest.fixture
async def harness(harness_factory: Callable[..., Any]) -> AppHarness:
    return await harness_factory()  # type: ignore[no-any-return]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL on each engine: the storage-touching tests run on both."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'authsvc.db'}"
        return
    url, drop = fresh_postgres_database()
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped after the test (skipped without one)."""
    url, drop = fresh_postgres_database()
    try:
        yield url
    finally:
        drop()


@pytest.fixture
async def db_harness_factory(harness_factory: Callable[..., Any], database_url: str) -> Callable[..., Any]:
    """Like harness_factory, on SQLite and on PostgreSQL."""

    async def build(**overrides: Any) -> AppHarness:
        return await harness_factory(database_url=database_url, **overrides)  # type: ignore[no-any-return]

    return build


@pytest.fixture
async def db_harness(db_harness_factory: Callable[..., Any]) -> AppHarness:
    return await db_harness_factory()  # type: ignore[no-any-return]


# --- a real server process ----------------------------------------------------------------
@pytest.fixture
def live_server_factory(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    servers: list[LiveServer] = []

    def start(**settings: str) -> LiveServer:
        server = start_server(tmp_path, **settings)
        servers.append(server)
        return server

    yield start
    for server in servers:
        stop_server(server)


@pytest.fixture
def live_server(live_server_factory: Callable[..., LiveServer]) -> LiveServer:
    return live_server_factory()
