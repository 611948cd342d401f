"""Fixtures of the browser tests: headless Chromium, the client's callback server, a live authsvc.

One server for the whole directory (start-up and client registration are the
slow part); every test gets its own users and a fresh browser profile, so no
session, consent or cookie leaks from one test into another.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser.support import (
    ARTIFACTS,
    SPA,
    SPA_SCOPE,
    THIRD_PARTY,
    THIRD_PARTY_SCOPE,
    WEB,
    WEB_SCOPE,
    BrowserPaths,
    CallbackServer,
    SignInSite,
    browser_paths,
    new_chrome,
)
from tests.support import LiveServer, start_server, stop_server
from tests.trust_support import cli_ok, client_secret


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def chromium() -> BrowserPaths:
    paths = browser_paths()
    for stale in ARTIFACTS.glob("failed-*"):  # what an earlier run's failures left
        stale.unlink()
    return paths


def _drivers(request: pytest.FixtureRequest, paths: BrowserPaths, **options: bool) -> Iterator[WebDriver]:
    driver = new_chrome(paths, **options)
    try:
        yield driver
        if request.node.stash.get(_FAILED, False):  # keep what the browser showed
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
            driver.save_screenshot(str(ARTIFACTS / f"failed-{name}.png"))
            (ARTIFACTS / f"failed-{name}.html").write_text(
                f"<!-- {driver.current_url} -->\n{driver.page_source}"
            )
    finally:
        driver.quit()


@pytest.fixture
def browser(request: pytest.FixtureRequest, chromium: BrowserPaths) -> Iterator[WebDriver]:
    """A fresh headless Chromium, 1280x900."""
    yield from _drivers(request, chromium)


@pytest.fixture
def phone_browser(request: pytest.FixtureRequest, chromium: BrowserPaths) -> Iterator[WebDriver]:
    """Chromium emulating a 390 px wide phone."""
    yield from _drivers(request, chromium, phone=True)


@pytest.fixture
def no_script_browser(request: pytest.FixtureRequest, chromium: BrowserPaths) -> Iterator[WebDriver]:
    """Chromium with JavaScript switched off (checked on a page of its own first)."""
    for driver in _drivers(request, chromium, javascript=False):
        driver.get("data:text/html,<title>off</title><script>document.title='on'</script>")
        assert driver.title == "off", "JavaScript is still running"
        yield driver


@pytest.fixture(scope="session")
def callbacks() -> Iterator[CallbackServer]:
    server = CallbackServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _register_clients(server: LiveServer, callbacks: CallbackServer) -> tuple[str, str]:
    env = server.env
    exact = callbacks.url("/callback")
    signed_out = callbacks.url("/signed-out")
    cli_ok(
        env,
        "clients",
        "add",
        SPA,
        "--public",
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--redirect-uri",
        "http://127.0.0.1/callback",  # loopback: any port matches (RFC 8252 §7.3)
        "--post-logout-redirect-uri",
        signed_out,
        "--web-origin",
        callbacks.origin,
        "--first-party",
        "--scope",
        SPA_SCOPE,
    )
    web_secret = client_secret(
        cli_ok(
            env,
            "clients",
            "add",
            WEB,
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--redirect-uri",
            exact,
            "--post-logout-redirect-uri",
            signed_out,
            "--scope",
            WEB_SCOPE,
        )
    )
    third_party_secret = client_secret(
        cli_ok(
            env,
            "clients",
            "add",
            THIRD_PARTY,
            "--grant",
            "authorization_code",
            "--redirect-uri",
            exact,
            "--scope",
            THIRD_PARTY_SCOPE,
        )
    )
    return web_secret, third_party_secret


@pytest.fixture(scope="session")
def site(
    chromium: BrowserPaths, tmp_path_factory: pytest.TempPathFactory, callbacks: CallbackServer
) -> Iterator[SignInSite]:
    """authsvc serve on 127.0.0.1 (SQLite, cheap argon2), its clients registered through the CLI."""
    server = start_server(tmp_path_factory.mktemp("browser-signin"))
    try:
        web_secret, third_party_secret = _register_clients(server, callbacks)
        metadata = httpx.get(server.url + "/.well-known/openid-configuration", timeout=10).json()
        yield SignInSite(server, metadata, callbacks, web_secret, third_party_secret)
    finally:
        stop_server(server)
