"""Signing in with a real browser: a public SPA with PKCE, then single sign-on and consent for web apps.

The browser opens the authorization URL the test built, the person types on the
hosted pages, and the server's 303 really takes the browser to the client's
loopback redirect URI; the test then redeems the code as the client would.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser.support import (
    PASSWORD,
    SPA,
    SPA_SCOPE,
    THIRD_PARTY,
    THIRD_PARTY_SCOPE,
    WEB,
    WEB_SCOPE,
    AuthorizationRequest,
    SignInSite,
    authlib_client,
    choose_consent,
    get_json,
    listed_items,
    redeem,
    screenshot,
    sign_in,
    submit_button,
    submit_login,
    verify_id_token,
    wait_for_consent_page,
    wait_for_login_page,
)
from tests.support import claims_of

pytestmark = pytest.mark.slow


def test_spa_signs_in_with_pkce_and_gets_id_token_userinfo_and_refresh(
    browser: WebDriver, site: SignInSite
) -> None:
    user = site.add_user()
    request = AuthorizationRequest.for_client(site, SPA)

    browser.get(request.url(site))
    login = wait_for_login_page(browser)
    screenshot(browser, "login.png")
    assert browser.get_cookie("authsvc_csrf") is not None, "the login page set no CSRF cookie"
    submit_login(browser, user, PASSWORD)

    callback = site.callbacks.wait("/callback", request.state)
    assert set(callback) == {"code", "state", "iss"}, callback
    assert callback["iss"] == site.issuer
    assert browser.current_url.startswith(site.redirect_uri + "?")
    assert login.hidden["interaction"] not in browser.current_url

    session = browser.get_cookie("authsvc_session")
    assert session is not None, "no SSO session cookie after signing in"
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Lax"
    assert session["secure"] is False  # an http (loopback) issuer: no Secure, no __Host- prefix
    # a persistent cookie living AUTHSVC_SSO_SESSION_TTL (28800 s by default)
    assert abs(session["expiry"] - (time.time() + 28800)) < 300, session.get("expiry")

    token = redeem(site, request, callback)
    assert token["token_type"] == "Bearer"
    assert set(token["scope"].split()) == set(SPA_SCOPE.split())
    assert token["refresh_token"]
    assert token["expires_in"] > 0
    access = claims_of(token["access_token"])
    assert access["client_id"] == SPA
    id_claims = verify_id_token(
        site, token["id_token"], client_id=SPA, nonce=request.nonce, access_token=token["access_token"]
    )

    userinfo = get_json(site.endpoint("userinfo"), token["access_token"])
    assert userinfo.status_code == 200, userinfo.text
    assert "no-store" in userinfo.headers["cache-control"]
    assert userinfo.json() == {
        "sub": id_claims["sub"],
        "preferred_username": user,
        "name": "Alice Example",
        "email": f"{user}@example.com",
        "email_verified": False,
    }
    me = get_json(site.server.url + "/users/me", token["access_token"])
    assert me.status_code == 200, me.text
    assert me.json()["username"] == user

    with authlib_client(client_id=SPA, token_endpoint_auth_method="none") as client:
        refreshed = dict(client.refresh_token(site.endpoint("token"), refresh_token=token["refresh_token"]))
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert claims_of(refreshed["access_token"])["sid"] == access["sid"]
    assert get_json(site.endpoint("userinfo"), refreshed["access_token"]).json()["sub"] == id_claims["sub"]

    # the code was single use: a second redemption is refused
    again = httpx.post(
        site.endpoint("token"),
        data={
            "grant_type": "authorization_code",
            "client_id": SPA,
            "code": callback["code"],
            "redirect_uri": request.redirect_uri,
            "code_verifier": request.code_verifier,
        },
        timeout=10,
    )
    assert again.status_code == 400, again.text
    assert again.json()["error"] == "invalid_grant"


def test_web_client_gets_single_sign_on_and_remembered_consent(browser: WebDriver, site: SignInSite) -> None:
    user = site.add_user()
    first_request = AuthorizationRequest.for_client(site, SPA)
    first = redeem(site, first_request, sign_in(browser, site, first_request, user))
    first_claims = verify_id_token(
        site, first["id_token"], client_id=SPA, nonce=first_request.nonce, access_token=first["access_token"]
    )

    # same browser, another client that is not first-party: no password, a consent page
    request = AuthorizationRequest.for_client(site, WEB)
    browser.get(request.url(site))
    wait_for_consent_page(browser)
    screenshot(browser, "consent.png")
    assert len(listed_items(browser)) == len(WEB_SCOPE.split()), listed_items(browser)
    assert site.callbacks.find("/callback", request.state) is None
    choose_consent(browser, "allow")

    callback = site.callbacks.wait("/callback", request.state)
    assert set(callback) == {"code", "state", "iss"}, callback
    assert callback["iss"] == site.issuer
    token = redeem(site, request, callback)  # client_secret_basic
    assert set(token["scope"].split()) == set(WEB_SCOPE.split())
    assert token["refresh_token"]
    claims = verify_id_token(
        site, token["id_token"], client_id=WEB, nonce=request.nonce, access_token=token["access_token"]
    )
    assert claims["sub"] == first_claims["sub"]
    assert claims["auth_time"] == first_claims["auth_time"], "single sign-on is not a new authentication"
    assert claims_of(token["access_token"])["client_id"] == WEB

    consents = site.server.cli("users", "consents", user)
    assert consents.returncode == 0, consents.stderr
    assert WEB in consents.stdout

    # consent is remembered: the next authorization goes straight back with a code
    again = AuthorizationRequest.for_client(site, WEB)
    browser.get(again.url(site))
    callback = site.callbacks.wait("/callback", again.state)
    assert "code" in callback, callback
    assert browser.current_url.startswith(site.redirect_uri + "?")
    assert redeem(site, again, callback)["access_token"]

    # another third-party client: refusing consent sends access_denied back to it
    denied = AuthorizationRequest.for_client(site, THIRD_PARTY)
    browser.get(denied.url(site))
    wait_for_consent_page(browser)
    assert len(listed_items(browser)) == len(THIRD_PARTY_SCOPE.split()), listed_items(browser)
    choose_consent(browser, "deny")
    callback = site.callbacks.wait("/callback", denied.state)
    assert callback["error"] == "access_denied", callback
    assert callback["iss"] == site.issuer
    assert "code" not in callback
    assert THIRD_PARTY not in site.server.cli("users", "consents", user).stdout

    # prompt=none cannot show the consent page: consent_required; prompt=consent shows it again
    silent = AuthorizationRequest.for_client(site, THIRD_PARTY, prompt="none")
    browser.get(silent.url(site))
    callback = site.callbacks.wait("/callback", silent.state)
    assert callback["error"] == "consent_required", callback
    asked = AuthorizationRequest.for_client(site, WEB, prompt="consent")
    browser.get(asked.url(site))
    choose_consent(browser, "allow")
    assert "code" in site.callbacks.wait("/callback", asked.state)


def test_login_and_consent_work_without_javascript(no_script_browser: WebDriver, site: SignInSite) -> None:
    user = site.add_user()
    request = AuthorizationRequest.for_client(site, WEB)
    no_script_browser.get(request.url(site))
    submit_login(no_script_browser, user, PASSWORD)
    choose_consent(no_script_browser, "allow")
    callback = site.callbacks.wait("/callback", request.state)
    assert redeem(site, request, callback)["id_token"]


def test_login_form_is_bound_to_the_csrf_cookie(browser: WebDriver, site: SignInSite) -> None:
    """The form's hidden fields alone, or the cookie alone, are refused; both together sign in."""
    user = site.add_user()
    request = AuthorizationRequest.for_client(site, SPA)
    browser.get(request.url(site))
    form = wait_for_login_page(browser)
    action = str(form.element.get_attribute("action"))  # resolved against the page, as the browser would
    fields = {**form.hidden, "username": user, "password": PASSWORD}
    cookies = {cookie["name"]: cookie["value"] for cookie in browser.get_cookies()}
    assert "authsvc_csrf" in cookies, sorted(cookies)

    no_cookie = httpx.post(action, data=fields, timeout=10)
    assert no_cookie.status_code == 403, no_cookie.text
    assert no_cookie.headers["content-type"].startswith("text/html")
    without_token = {name: value for name, value in fields.items() if name != "csrf_token"}
    no_token = httpx.post(action, data=without_token, cookies=cookies, timeout=10)
    assert no_token.status_code == 403, no_token.text
    other_browser_token = httpx.post(
        action, data=fields, cookies={**cookies, "authsvc_csrf": cookies["authsvc_csrf"][::-1]}, timeout=10
    )
    assert other_browser_token.status_code == 403, other_browser_token.text
    assert site.callbacks.find("/callback", request.state) is None

    # the browser's own submission, cookie and all, still signs in
    name_field = form.element.find_element(By.CSS_SELECTOR, "input[name=username]")
    name_field.send_keys(user)
    form.element.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(PASSWORD)
    submit_button(form.element).click()
    assert "code" in site.callbacks.wait("/callback", request.state)


_FETCH = """
const [url, options, done] = arguments;
if (options.form) { options.body = new URLSearchParams(options.form); delete options.form; }
fetch(url, options)
  .then((response) => response.json().then((body) => done({status: response.status, body})))
  .catch((error) => done({error: String(error)}));
"""


def test_spa_redeems_its_code_from_its_registered_origin(browser: WebDriver, site: SignInSite) -> None:
    """CORS as a browser enforces it: the SPA's page (its --web-origin) calls /token and /userinfo."""
    user = site.add_user()
    request = AuthorizationRequest.for_client(site, SPA)
    callback = sign_in(browser, site, request, user)
    assert browser.current_url.startswith(site.callbacks.origin + "/")  # the page runs on the web origin

    form = {
        "grant_type": "authorization_code",
        "client_id": SPA,
        "code": callback["code"],
        "redirect_uri": request.redirect_uri,
        "code_verifier": request.code_verifier,
    }
    redeemed = browser.execute_async_script(_FETCH, site.endpoint("token"), {"method": "POST", "form": form})
    assert redeemed.get("status") == 200, redeemed
    token = redeemed["body"]
    assert token["id_token"] and token["refresh_token"]

    # a bearer header makes it a preflighted request
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    userinfo = browser.execute_async_script(_FETCH, site.endpoint("userinfo"), {"headers": headers})
    assert userinfo.get("status") == 200, userinfo
    assert userinfo["body"]["preferred_username"] == user

    refresh = {"grant_type": "refresh_token", "client_id": SPA, "refresh_token": token["refresh_token"]}
    refreshed = browser.execute_async_script(
        _FETCH, site.endpoint("token"), {"method": "POST", "form": refresh}
    )
    assert refreshed.get("status") == 200, refreshed

    # the same page from an origin that is not registered: the browser withholds the answer
    browser.get(site.callbacks.url("/callback").replace("127.0.0.1", "localhost"))
    refresh["refresh_token"] = refreshed["body"]["refresh_token"]
    blocked = browser.execute_async_script(
        _FETCH, site.endpoint("token"), {"method": "POST", "form": refresh}
    )
    assert "error" in blocked, blocked


def test_unregistered_redirect_uri_never_leaves_the_server(browser: WebDriver, site: SignInSite) -> None:
    """The browser stays on an error page of the issuer: no redirect, no form, nothing at the other URI."""
    user = site.add_user()
    sign_in(browser, site, AuthorizationRequest.for_client(site, SPA), user)  # a session, so SSO could apply
    for client_id, redirect_uri in (
        (WEB, site.callbacks.url("/elsewhere")),  # registered exactly: another path
        (SPA, "http://localhost:9/callback"),  # loopback by name is not the registered 127.0.0.1
        ("no-such-client", site.redirect_uri),
    ):
        request = AuthorizationRequest(client_id, redirect_uri, "openid")
        browser.get(request.url(site))
        assert browser.current_url.startswith(site.endpoint("authorization") + "?"), browser.current_url
        assert not browser.find_elements(By.TAG_NAME, "form"), (client_id, redirect_uri)
        assert site.callbacks.find("/elsewhere", request.state) is None
        assert site.callbacks.find("/callback", request.state) is None
    screenshot(browser, "error.png")


def test_pushed_authorization_request_signs_in_through_the_browser(
    browser: WebDriver, site: SignInSite
) -> None:
    """RFC 9126: the client pushes the parameters, the browser carries only client_id and request_uri."""
    user = site.add_user()
    request = AuthorizationRequest.for_client(site, WEB)
    pushed_query = parse_qs(urlsplit(request.url(site)).query)
    pushed = httpx.post(
        site.endpoint("pushed_authorization_request"),
        data={name: values[0] for name, values in pushed_query.items()},
        auth=(WEB, site.web_secret),
        timeout=10,
    )
    assert pushed.status_code == 201, pushed.text
    request_uri = pushed.json()["request_uri"]
    assert request_uri.startswith("urn:ietf:params:oauth:request_uri:")

    browser.get(
        site.endpoint("authorization") + "?" + urlencode({"client_id": WEB, "request_uri": request_uri})
    )
    submit_login(browser, user, PASSWORD)
    choose_consent(browser, "allow")
    callback = site.callbacks.wait("/callback", request.state)  # the pushed state comes back
    token = redeem(site, request, callback)
    verify_id_token(
        site, token["id_token"], client_id=WEB, nonce=request.nonce, access_token=token["access_token"]
    )
