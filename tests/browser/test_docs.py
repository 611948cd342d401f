"""``/docs`` (``AUTHSVC_DOCS=true``) in Chromium, under an issuer path: Swagger UI renders the
public OpenAPI document under its strict policy (nothing refused, nothing fetched elsewhere)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.support import WAIT, screenshot
from tests.support import authsvc_command, free_port, server_env

pytestmark = pytest.mark.slow


@pytest.fixture
def docs_server(tmp_path: Path) -> Iterator[str]:
    """A live server with AUTHSVC_DOCS=true and an issuer path; its issuer."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}/auth"
    process = subprocess.Popen(
        [*authsvc_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=server_env(tmp_path, issuer=issuer, docs="true", signing_alg="EdDSA"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
            try:
                if httpx.get(issuer + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield issuer
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_swagger_ui_renders_the_document_under_its_policy(browser: WebDriver, docs_server: str) -> None:
    browser.get(docs_server + "/docs")
    WebDriverWait(browser, WAIT).until(
        lambda driver: driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    )
    paths = [element.text for element in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")]
    assert "/token" in paths and "/.well-known/jwks.json" in paths
    # "Try it out" sends requests under the issuer path (the document's server).
    server = browser.find_element(By.CSS_SELECTOR, ".servers select").get_attribute("value")
    assert server == "/auth"
    browser.find_elements(By.CSS_SELECTOR, ".opblock-summary")[1].click()  # opens /token
    WebDriverWait(browser, WAIT).until(lambda driver: driver.find_elements(By.CSS_SELECTOR, ".try-out"))
    screenshot(browser, "docs.png")
    problems = [
        entry["message"]
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" or "Content Security Policy" in entry["message"]
    ]
    assert problems == [], problems
