"""The hosted login page as a person meets it: a wrong password, the keyboard alone, a phone's screen."""

from __future__ import annotations

import unicodedata

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions

from tests.browser.support import (
    GENERIC_LOGIN_ERROR,
    PASSWORD,
    SPA,
    AuthorizationRequest,
    SignInSite,
    get_json,
    patient,
    redeem,
    screenshot,
    submit_login,
    visible_text,
    wait_for_login_page,
    wait_for_new_page,
)

pytestmark = pytest.mark.slow


def test_wrong_password_shows_the_form_again_with_one_generic_message(
    browser: WebDriver, site: SignInSite
) -> None:
    user = site.add_user()
    request = AuthorizationRequest.for_client(site, SPA)
    browser.get(request.url(site))
    assert GENERIC_LOGIN_ERROR not in visible_text(browser)

    submit_login(browser, user, PASSWORD + "!")
    form = wait_for_login_page(browser)  # the answer to the POST itself: the form again
    assert browser.current_url.split("?")[0] == site.endpoint("authorization")
    assert visible_text(browser).count(GENERIC_LOGIN_ERROR) == 1, visible_text(browser)
    assert form.element.find_element(By.CSS_SELECTOR, "input[name=password]").get_attribute("value") == ""
    screenshot(browser, "login-error.png")
    wrong_password_page = visible_text(browser)

    submit_login(browser, "nobody-" + user, PASSWORD)  # an unknown user reads exactly the same
    wait_for_login_page(browser)
    assert visible_text(browser) == wrong_password_page
    assert site.callbacks.find("/callback", request.state) is None
    assert browser.get_cookie("authsvc_session") is None

    submit_login(browser, user, PASSWORD)
    callback = site.callbacks.wait("/callback", request.state)
    assert redeem(site, request, callback)["access_token"]


def test_login_form_works_with_the_keyboard_alone(browser: WebDriver, site: SignInSite) -> None:
    user = site.add_user()
    request = AuthorizationRequest.for_client(site, SPA)
    browser.get(request.url(site))
    form = wait_for_login_page(browser)
    username = form.element.find_element(By.CSS_SELECTOR, "input[name=username]")
    password = form.element.find_element(By.CSS_SELECTOR, "input[name=password]")
    keys = ActionChains(browser)

    for _ in range(10):  # Tab from the top of the page to the username field
        if browser.switch_to.active_element == username:
            break
        keys.send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element == username, "Tab never reaches the username field"
    keys.send_keys(user).perform()
    keys.send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element == password, "Tab from the username does not go to the password"
    keys.send_keys(PASSWORD).perform()
    keys.send_keys(Keys.ENTER).perform()
    wait_for_new_page(browser, form.element)

    callback = site.callbacks.wait("/callback", request.state)
    assert "code" in callback, callback


def test_login_page_fits_a_phone(phone_browser: WebDriver, site: SignInSite) -> None:
    user = site.add_user()
    request = AuthorizationRequest.for_client(site, SPA)
    phone_browser.get(request.url(site))
    form = wait_for_login_page(phone_browser)
    screenshot(phone_browser, "login-mobile.png")

    width, scroll_width = phone_browser.execute_script(
        "return [window.innerWidth, document.documentElement.scrollWidth]"
    )
    assert width == 390, f"laid out {width} px wide on a 390 px screen (no viewport meta tag?)"
    assert scroll_width <= width, f"{scroll_width} px of content on a {width} px screen"
    for name in ("username", "password"):
        field = form.element.find_element(By.CSS_SELECTOR, f"input[name={name}]")
        box = field.rect
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, (name, box)

    submit_login(phone_browser, user, PASSWORD)
    assert "code" in site.callbacks.wait("/callback", request.state)


_FRAME = """
const frame = document.createElement("iframe");
frame.id = arguments[0];
frame.src = arguments[1];
frame.onload = () => { frame.dataset.loaded = "yes"; };
document.body.appendChild(frame);
"""


def _framed_page(browser: WebDriver, frame_id: str, url: str) -> tuple[str, int]:
    """Load ``url`` in an iframe of the current page: the frame's location and its password fields."""
    browser.execute_script(_FRAME, frame_id, url)
    frame = patient(browser).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, f"iframe#{frame_id}[data-loaded]"))
    )
    browser.switch_to.frame(frame)
    try:
        location = str(browser.execute_script("return location.href"))
        return location, len(browser.find_elements(By.CSS_SELECTOR, "input[name=password]"))
    finally:
        browser.switch_to.default_content()


def test_login_page_cannot_be_framed(browser: WebDriver, site: SignInSite) -> None:
    """Clickjacking: Chromium refuses to show the login page inside another site's frame."""
    browser.get(site.callbacks.url("/framing-page"))
    # the method sees a page of another origin that does load in a frame ...
    elsewhere = site.callbacks.url("/framed").replace("127.0.0.1", "localhost")
    location, _ = _framed_page(browser, "allowed", elsewhere)
    assert location == elsewhere
    # ... and the login page does not load in one
    request = AuthorizationRequest.for_client(site, SPA)
    location, password_fields = _framed_page(browser, "login", request.url(site))
    assert password_fields == 0
    assert not location.startswith(site.issuer), location


def test_non_ascii_name_and_password_typed_in_the_browser(browser: WebDriver, site: SignInSite) -> None:
    """The page's form sends UTF-8; the password typed decomposed (NFD) matches its NFC form (RFC 8265)."""
    composed = "Pässwörter sind lang ✓"
    user = site.add_user(prefix="zoë", password=composed)
    request = AuthorizationRequest.for_client(site, SPA)
    browser.get(request.url(site))
    submit_login(browser, user, unicodedata.normalize("NFD", composed))
    callback = site.callbacks.wait("/callback", request.state)
    token = redeem(site, request, callback)
    assert get_json(site.endpoint("userinfo"), token["access_token"]).json()["preferred_username"] == user


def test_two_tabs_with_login_pages_both_work(browser: WebDriver, site: SignInSite) -> None:
    """A login page opened first still works after a second tab opened another one (one CSRF cookie)."""
    user = site.add_user()
    first = AuthorizationRequest.for_client(site, SPA)
    second = AuthorizationRequest.for_client(site, SPA)
    browser.get(first.url(site))
    wait_for_login_page(browser)
    first_tab = browser.current_window_handle
    browser.switch_to.new_window("tab")
    browser.get(second.url(site))
    wait_for_login_page(browser)

    browser.switch_to.window(first_tab)  # back to the older page, untouched since it loaded
    submit_login(browser, user, PASSWORD)
    assert "code" in site.callbacks.wait("/callback", first.state)
