"""Signing out in a real browser, and what prompt=none / prompt=login do around a browser session."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions

from tests.browser.support import (
    PASSWORD,
    SPA,
    AuthorizationRequest,
    PageForm,
    SignInSite,
    patient,
    redeem,
    screenshot,
    sign_in,
    submit_login,
    visible_text,
    wait_for_login_page,
    wait_for_new_page,
)
from tests.support import assert_error

pytestmark = pytest.mark.slow


def _signed_in(browser: WebDriver, site: SignInSite, user: str) -> dict[str, Any]:
    request = AuthorizationRequest.for_client(site, SPA)
    return redeem(site, request, sign_in(browser, site, request, user))


def _without_password(browser: WebDriver, site: SignInSite) -> dict[str, Any]:
    """Single sign-on: the browser session answers at once, no page is shown."""
    request = AuthorizationRequest.for_client(site, SPA)
    browser.get(request.url(site))
    return redeem(site, request, site.callbacks.wait("/callback", request.state))


def _refresh(site: SignInSite, refresh_token: str) -> httpx.Response:
    return httpx.post(
        site.endpoint("token"),
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": SPA},
        timeout=10,
    )


def _asks_for_password(browser: WebDriver, site: SignInSite) -> None:
    request = AuthorizationRequest.for_client(site, SPA)
    browser.get(request.url(site))
    wait_for_login_page(browser)
    assert site.callbacks.find("/callback", request.state) is None


def test_logout_with_id_token_hint_ends_the_browser_session(browser: WebDriver, site: SignInSite) -> None:
    user = site.add_user()
    first = _signed_in(browser, site, user)
    rotated = _refresh(site, first["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    token = _without_password(browser, site)  # a second family of the same browser session

    state = "bye-" + user
    query = {
        "id_token_hint": token["id_token"],
        "post_logout_redirect_uri": site.callbacks.url("/elsewhere"),  # not registered
        "state": state,
    }
    browser.get(site.endpoint("end_session") + "?" + urlencode(query))
    assert browser.current_url.startswith(site.endpoint("end_session") + "?"), browser.current_url
    assert not browser.find_elements(By.TAG_NAME, "form")
    assert site.callbacks.find("/elsewhere", state) is None

    query["post_logout_redirect_uri"] = site.post_logout_redirect_uri
    browser.get(site.endpoint("end_session") + "?" + urlencode(query))
    landed = site.callbacks.wait("/signed-out", state)
    assert landed == {"state": state}
    assert browser.current_url == site.post_logout_redirect_uri + "?" + urlencode({"state": state})

    assert_error(_refresh(site, token["refresh_token"]), 400, "invalid_grant")
    assert_error(_refresh(site, rotated.json()["refresh_token"]), 400, "invalid_grant")
    _asks_for_password(browser, site)


def test_logout_without_hint_asks_for_confirmation(browser: WebDriver, site: SignInSite) -> None:
    user = site.add_user()
    token = _signed_in(browser, site, user)

    browser.get(site.endpoint("end_session"))
    button = patient(browser).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "button[name=logout][value=yes]")),
        "no logout confirmation page",
    )
    form = PageForm.of(button.find_element(By.XPATH, "ancestor::form"))
    assert form.method == "post", form.method
    assert form.action == "/logout", form.action
    assert form.hidden.get("csrf_token"), form.hidden
    screenshot(browser, "logout-confirm.png")
    rotated = _refresh(site, token["refresh_token"])
    assert rotated.status_code == 200, "showing the confirmation page signed out already"

    button.click()
    wait_for_new_page(browser, button)
    screenshot(browser, "logged-out.png")
    assert not browser.find_elements(By.CSS_SELECTOR, "button[name=logout]")
    assert not browser.find_elements(By.CSS_SELECTOR, "input[name=password]")
    assert "signed out" in visible_text(browser).lower(), visible_text(browser)

    assert_error(_refresh(site, rotated.json()["refresh_token"]), 400, "invalid_grant")
    _asks_for_password(browser, site)


def test_prompt_login_asks_again_and_prompt_none_needs_a_session(
    browser: WebDriver, site: SignInSite
) -> None:
    user = site.add_user()
    token = _signed_in(browser, site, user)

    silent = AuthorizationRequest.for_client(site, SPA, prompt="none")
    browser.get(silent.url(site))
    assert "code" in site.callbacks.wait("/callback", silent.state)

    again = AuthorizationRequest.for_client(site, SPA, prompt="login")
    browser.get(again.url(site))
    wait_for_login_page(browser)
    submit_login(browser, user, PASSWORD)
    token = redeem(site, again, site.callbacks.wait("/callback", again.state))

    state = "bye-" + user
    browser.get(
        site.endpoint("end_session")
        + "?"
        + urlencode(
            {
                "id_token_hint": token["id_token"],
                "post_logout_redirect_uri": site.post_logout_redirect_uri,
                "state": state,
            }
        )
    )
    site.callbacks.wait("/signed-out", state)

    after = AuthorizationRequest.for_client(site, SPA, prompt="none")
    browser.get(after.url(site))
    callback = site.callbacks.wait("/callback", after.state)
    assert callback["error"] == "login_required", callback
    assert callback["iss"] == site.issuer
    assert "code" not in callback
