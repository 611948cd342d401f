"""The console in Chromium: sign in through the hosted page as an admin, read the key timeline,
see it follow a ``keys rotate --force`` run by the CLI, revoke a key, rotate a client secret with
an overlap and use both secrets at /token inside it. Screenshots land in test-artifacts/console/."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select

from tests.browser.support import PASSWORD, BrowserPaths, patient, submit_login, wait_for_new_page
from tests.support import LiveServer, free_port, start_server, stop_server
from tests.trust_support import add_confidential_client, cli_ok

pytestmark = pytest.mark.slow

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"


@dataclass
class ConsoleSite:
    server: LiveServer
    admin: str  # the admin listener's origin
    secret: str  # the client "svc"'s first secret


@pytest.fixture(scope="module")
def console_site(chromium: BrowserPaths, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleSite]:
    """authsvc serve with an admin listener, an admin user and a confidential client."""
    port = free_port()
    server = start_server(tmp_path_factory.mktemp("console"), admin_bind=f"127.0.0.1:{port}")
    try:
        cli_ok(
            server.env,
            "users",
            "add",
            "root",
            "--password-stdin",
            "--scope",
            "authsvc:admin",
            input=PASSWORD + "\n",
        )
        secret = add_confidential_client(server.env, "svc")
        yield ConsoleSite(server, f"http://127.0.0.1:{port}", secret)
    finally:
        stop_server(server)


def shot(driver: WebDriver, name: str, element: str | None = None) -> Path:
    """The whole page (or one element of it) as test-artifacts/console/``name``."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(1280, max(900, height + 120))
    if element is None:
        assert driver.save_screenshot(str(path)), path
    else:
        assert driver.find_element(By.CSS_SELECTOR, element).screenshot(str(path)), path
    driver.set_window_size(1280, 900)
    return path


def sign_in(driver: WebDriver, site: ConsoleSite) -> None:
    driver.get(site.admin + "/console")
    submit_login(driver, "root", PASSWORD)  # the issuer's hosted login page
    patient(driver).until(expected_conditions.presence_of_element_located((By.ID, "tl-title")))
    assert driver.current_url == site.admin + "/console"


def key_rows(driver: WebDriver) -> dict[str, str]:
    """kid -> state, from the table under the timeline."""
    rows = driver.find_elements(By.CSS_SELECTOR, "table[aria-labelledby=keys-title] tbody tr")
    return {
        row.find_element(By.CSS_SELECTOR, "th code").text: row.find_element(By.CSS_SELECTOR, ".badge").text
        for row in rows
    }


def timeline_rows(driver: WebDriver) -> list[str]:
    return [label.text for label in driver.find_elements(By.CSS_SELECTOR, "svg .tl-label")]


def test_the_timeline_follows_a_rotation_and_a_revocation(
    browser: WebDriver, console_site: ConsoleSite
) -> None:
    sign_in(browser, console_site)
    before = key_rows(browser)
    assert "signing" in before.values()
    assert len(timeline_rows(browser)) == len(before)
    svg = browser.find_element(By.CSS_SELECTOR, "svg[role=img]")
    assert svg.get_attribute("aria-labelledby") == "tl-title tl-desc"
    assert "max-age=" in browser.find_element(By.ID, "next-change").text
    assert "Signed in as root" in browser.find_element(By.CSS_SELECTOR, ".who").text
    shot(browser, "timeline-start.png")

    cli_ok(console_site.server.env, "keys", "rotate", "--force")
    browser.refresh()
    after = key_rows(browser)
    assert len(after) == len(before) + 1 and set(before) < set(after)
    assert "pending" in after.values(), after
    assert len(timeline_rows(browser)) == len(after)
    assert browser.find_elements(By.CSS_SELECTOR, "svg rect.tl-span.pending")
    assert browser.find_elements(By.CSS_SELECTOR, "svg .tl-next"), "the next change is marked"
    shot(browser, "timeline.png", "section[aria-labelledby=timeline-title]")
    shot(browser, "keys-page.png")

    signing = next(kid for kid, state in after.items() if state == "signing")
    row = next(
        r
        for r in browser.find_elements(By.CSS_SELECTOR, "table[aria-labelledby=keys-title] tbody tr")
        if r.find_element(By.CSS_SELECTOR, "th code").text == signing
    )
    row.find_element(By.CSS_SELECTOR, "button").click()
    confirm = patient(browser).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "button.danger")),
        "no confirmation page",
    )
    assert signing in browser.find_element(By.TAG_NAME, "main").text
    confirm.click()
    wait_for_new_page(browser, confirm)
    # Its own token was signed by that key: the console signs in again through SSO, silently.
    patient(browser).until(expected_conditions.presence_of_element_located((By.ID, "tl-title")))
    revoked = key_rows(browser)
    assert revoked[signing] == "revoked", revoked
    assert "signing" in revoked.values()
    assert browser.find_elements(By.CSS_SELECTOR, "svg rect.tl-span.revoked")
    shot(browser, "timeline-revoked.png", "section[aria-labelledby=timeline-title]")
    shot(browser, "keys-page-revoked.png")


def test_a_client_secret_rotated_in_the_console_works_beside_the_old_one(
    browser: WebDriver, console_site: ConsoleSite
) -> None:
    sign_in(browser, console_site)
    browser.find_element(By.LINK_TEXT, "Clients").click()
    patient(browser).until(expected_conditions.presence_of_element_located((By.LINK_TEXT, "svc"))).click()
    Select(
        patient(browser).until(expected_conditions.presence_of_element_located((By.ID, "overlap")))
    ).select_by_value("3600")
    button = browser.find_element(By.XPATH, "//button[normalize-space()='Rotate the secret']")
    button.click()
    wait_for_new_page(browser, button)
    new = browser.find_element(By.ID, "client-secret").text
    assert new and new != console_site.secret
    assert "The old secret works until" in browser.find_element(By.TAG_NAME, "main").text
    shot(browser, "client-secret.png")

    def token(secret: str) -> int:
        answer = httpx.post(
            console_site.server.url + "/token",
            data={"grant_type": "client_credentials"},
            auth=("svc", secret),
            timeout=10,
        )
        return answer.status_code

    assert token(console_site.secret) == 200  # inside the overlap
    assert token(new) == 200
    browser.get(console_site.admin + "/console/clients/svc")
    assert "Previous secret" in browser.find_element(By.TAG_NAME, "main").text


def test_the_console_on_a_phone(phone_browser: WebDriver, console_site: ConsoleSite) -> None:
    sign_in(phone_browser, console_site)
    width = phone_browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 400, f"the page scrolls sideways: {width}px"
    assert phone_browser.save_screenshot(str(SHOTS / "timeline-phone.png"))
