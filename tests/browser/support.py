"""What the browser tests share: Chromium, the client's callback server, the pages, the token checks.

The browser is Debian's Chromium driven through its chromedriver (headless).
The "client" of every flow is the test itself: it builds the authorization
request (PKCE S256, state, nonce), runs a loopback HTTP server that the
browser is really redirected to, and redeems codes with Authlib.

Nothing here hard-codes what a page carries: forms, their actions and their
hidden inputs are read from the HTML the server sent.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.support import LiveServer

__all__ = [
    "ARTIFACTS",
    "GENERIC_LOGIN_ERROR",
    "PASSWORD",
    "SPA",
    "SPA_SCOPE",
    "THIRD_PARTY",
    "THIRD_PARTY_SCOPE",
    "WAIT",
    "WEB",
    "WEB_SCOPE",
    "AuthorizationRequest",
    "BrowserPaths",
    "CallbackServer",
    "PageForm",
    "SignInSite",
    "authlib_client",
    "browser_paths",
    "choose_consent",
    "get_json",
    "listed_items",
    "new_chrome",
    "patient",
    "redeem",
    "screenshot",
    "sign_in",
    "submit_button",
    "submit_login",
    "verify_id_token",
    "visible_text",
    "wait_for_consent_page",
    "wait_for_login_page",
    "wait_for_new_page",
]

#: Screenshots (and, on failure, the page) land here, under the repository root (gitignored).
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
#: Seconds any page or redirect may take.
WAIT = 15
PASSWORD = "correct horse battery"
#: spec/browser_signin.md: the one message of a failed login, whatever was wrong.
GENERIC_LOGIN_ERROR = "The username or password is incorrect."

#: A public, first-party single-page app (PKCE only, no secret).
SPA = "spa"
SPA_SCOPE = "openid profile email offline_access"
#: A confidential web application that is not first-party: its users see a consent page.
WEB = "webapp"
WEB_SCOPE = "openid profile email"
#: Another third-party client, for refusing consent.
THIRD_PARTY = "thirdparty"
THIRD_PARTY_SCOPE = "openid profile"

CHROMIUM_ARGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900")
#: A phone-sized screen, as Chrome's device emulation draws it (a viewport meta tag decides the layout).
PHONE = {"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 2.0, "mobile": True, "touch": True}}


# --- the browser ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class BrowserPaths:
    chromium: str
    chromedriver: str


def browser_paths() -> BrowserPaths:
    """Debian's Chromium and chromedriver: skip without them, but fail in CI (CI=true installs them)."""
    chromium = "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else shutil.which("chromium")
    driver = (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").is_file() else shutil.which("chromedriver")
    )
    if chromium and driver:
        return BrowserPaths(chromium, driver)
    missing = " and ".join(
        name for name, path in (("chromium", chromium), ("chromedriver", driver)) if not path
    )
    reason = f"{missing} not found: browser tests need Debian's chromium and chromium-driver packages"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " (CI=true: .ci/run installs them, so this is a failure)")
    pytest.skip(reason)


def new_chrome(paths: BrowserPaths, *, javascript: bool = True, phone: bool = False) -> WebDriver:
    """A fresh headless Chromium (its own profile: no cookies)."""
    options = webdriver.ChromeOptions()
    for argument in CHROMIUM_ARGS:
        options.add_argument(argument)
    options.binary_location = paths.chromium
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    if phone:
        options.add_experimental_option("mobileEmulation", PHONE)
    driver = webdriver.Chrome(service=Service(paths.chromedriver), options=options)
    driver.set_page_load_timeout(WAIT)
    return driver


def screenshot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path)), path
    return path


# --- the client's redirect URI: a loopback server run by the test ----------------------------------
_CALLBACK_PAGE = (
    b"<!doctype html><html lang=en><head><meta charset=utf-8><title>Client callback</title></head>"
    b"<body><h1>Client callback</h1><p>The authorization server sent the browser back here.</p></body></html>"
)


class CallbackServer:
    """A threaded HTTP server on 127.0.0.1 standing in for the clients' redirect URIs.

    It records the path and query of every request (favicons aside) and answers
    a small HTML page, so the browser really follows the server's 303.
    """

    def __init__(self) -> None:
        self._records: list[tuple[str, dict[str, list[str]]]] = []
        self._changed = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != "/favicon.ico":
                    with outer._changed:
                        outer._records.append((parts.path, parse_qs(parts.query, keep_blank_values=True)))
                        outer._changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(_CALLBACK_PAGE)))
                self.end_headers()
                self.wfile.write(_CALLBACK_PAGE)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self.origin = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="callback-server", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)

    def url(self, path: str = "/callback") -> str:
        return self.origin + path

    def find(self, path: str, state: str) -> dict[str, str] | None:
        """The query of a request already received at ``path`` with this ``state``, if any."""
        with self._changed:
            return self._match(path, state)

    def wait(self, path: str, state: str, timeout: float = WAIT) -> dict[str, str]:
        """The query of the request to ``path`` carrying ``state`` (each parameter exactly once)."""
        with self._changed:
            found = self._changed.wait_for(lambda: self._match(path, state), timeout)
        assert found, (
            f"the browser never reached {self.url(path)} with state={state}; requests: {self._seen()}"
        )
        return found

    def _match(self, path: str, state: str) -> dict[str, str] | None:
        for seen_path, query in self._records:
            if seen_path == path and query.get("state") == [state]:
                repeated = [name for name, values in query.items() if len(values) != 1]
                assert not repeated, f"repeated parameters at {path}: {repeated}"
                return {name: values[0] for name, values in query.items()}
        return None

    def _seen(self) -> list[str]:
        return [f"{path} {sorted(query)}" for path, query in self._records]


# --- the authorization server under test -------------------------------------------------------------
@dataclass
class SignInSite:
    """A live ``authsvc serve``, its discovery document, the registered clients and the callback server."""

    server: LiveServer
    metadata: dict[str, Any]
    callbacks: CallbackServer
    web_secret: str
    third_party_secret: str
    _users: int = 0

    @property
    def issuer(self) -> str:
        return str(self.metadata["issuer"])

    @property
    def redirect_uri(self) -> str:
        """Where the browser is sent back (the SPA registered ``http://127.0.0.1/callback``: any port)."""
        return self.callbacks.url("/callback")

    @property
    def post_logout_redirect_uri(self) -> str:
        return self.callbacks.url("/signed-out")

    def endpoint(self, name: str) -> str:
        return str(self.metadata[f"{name}_endpoint"])

    def add_user(self, prefix: str = "user", password: str = PASSWORD) -> str:
        """A new user (made through the CLI, full name "Alice Example"); its name."""
        self._users += 1
        name = f"{prefix}{self._users}"
        added = self.server.cli(
            "users",
            "add",
            name,
            "--password-stdin",
            "--scope",
            "read",
            "--email",
            f"user{self._users}@example.com",
            "--full-name",
            "Alice Example",
            input=password + "\n",
        )
        assert added.returncode == 0, added.stderr
        return name

    def secret_of(self, client_id: str) -> str | None:
        return {WEB: self.web_secret, THIRD_PARTY: self.third_party_secret}.get(client_id)


@dataclass(frozen=True)
class AuthorizationRequest:
    """One authorization request as a client builds it: PKCE S256, fresh state and nonce."""

    client_id: str
    redirect_uri: str
    scope: str
    extra: dict[str, str] = field(default_factory=dict)
    state: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    code_verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))  # 64 characters

    def url(self, site: SignInSite) -> str:
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": create_s256_code_challenge(self.code_verifier),
            "code_challenge_method": "S256",
            **self.extra,
        }
        return site.endpoint("authorization") + "?" + urlencode(query)

    @classmethod
    def for_client(cls, site: SignInSite, client_id: str, **extra: str) -> AuthorizationRequest:
        scope = {SPA: SPA_SCOPE, WEB: WEB_SCOPE, THIRD_PARTY: THIRD_PARTY_SCOPE}[client_id]
        return cls(client_id, site.redirect_uri, scope, extra)


# --- the pages ------------------------------------------------------------------------------------
@dataclass
class PageForm:
    """A form as the page serves it: its element, raw action and method, and its hidden inputs."""

    element: WebElement
    action: str
    method: str
    hidden: dict[str, str]

    @classmethod
    def of(cls, form: WebElement) -> PageForm:
        hidden = {
            str(field.get_dom_attribute("name")): str(field.get_attribute("value") or "")
            for field in form.find_elements(By.CSS_SELECTOR, "input[type=hidden]")
        }
        return cls(
            element=form,
            action=str(form.get_dom_attribute("action") or ""),
            method=str(form.get_dom_attribute("method") or "get").lower(),
            hidden=hidden,
        )


def _enclosing_form(element: WebElement) -> WebElement:
    return element.find_element(By.XPATH, "ancestor::form")


def patient(driver: WebDriver) -> WebDriverWait[WebDriver]:
    """A wait of WAIT seconds that polls through chromedriver's errors while a page is being replaced.

    During a navigation chromedriver may answer an element query with "Node with
    given id does not belong to the document" instead of a stale reference: poll again.
    """
    return WebDriverWait(driver, WAIT, ignored_exceptions=(WebDriverException,))


def wait_for_login_page(driver: WebDriver) -> PageForm:
    """The login page: one POST form to /authorize with username, password and the hidden bindings."""
    password = patient(driver).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "input[name=password]")),
        f"no login page at {driver.current_url}",
    )
    form = PageForm.of(_enclosing_form(password))
    assert form.method == "post", form.method
    assert form.action == "/authorize", form.action
    assert form.hidden.get("interaction"), form.hidden
    assert form.hidden.get("csrf_token"), form.hidden
    username = form.element.find_element(By.CSS_SELECTOR, "input[name=username]")
    assert username.get_dom_attribute("autocomplete") == "username"
    assert password.get_dom_attribute("type") == "password"
    assert password.get_dom_attribute("autocomplete") == "current-password"
    assert len(driver.find_elements(By.CSS_SELECTOR, "input[name=password]")) == 1
    return form


def submit_button(form: WebElement) -> WebElement:
    buttons = form.find_elements(
        By.CSS_SELECTOR, "button:not([type]), button[type=submit], input[type=submit]"
    )
    assert len(buttons) == 1, f"{len(buttons)} submit buttons on the login form"
    return buttons[0]


def submit_login(driver: WebDriver, username: str, password: str) -> PageForm:
    """Type the credentials into the login page and press its button; returns the form that was sent."""
    form = wait_for_login_page(driver)
    name_field = form.element.find_element(By.CSS_SELECTOR, "input[name=username]")
    name_field.clear()
    name_field.send_keys(username)
    form.element.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(password)
    submit_button(form.element).click()
    wait_for_new_page(driver, form.element)
    return form


def wait_for_new_page(driver: WebDriver, old: WebElement) -> None:
    """Until the browser has left the page that ``old`` is on."""
    patient(driver).until(expected_conditions.staleness_of(old), "the page did not change")


def wait_for_consent_page(driver: WebDriver) -> PageForm:
    """The consent page: one POST form to /authorize with an allow and a deny button, no password."""
    allow = patient(driver).until(
        expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, "button[name=consent][value=allow]")
        ),
        f"no consent page at {driver.current_url}",
    )
    form = PageForm.of(_enclosing_form(allow))
    assert form.method == "post", form.method
    assert form.action == "/authorize", form.action
    assert form.hidden.get("interaction"), form.hidden
    assert form.hidden.get("csrf_token"), form.hidden
    assert form.element.find_elements(By.CSS_SELECTOR, "button[name=consent][value=deny]")
    assert not driver.find_elements(By.CSS_SELECTOR, "input[name=password]"), "consent page asks a password"
    return form


def choose_consent(driver: WebDriver, value: str) -> None:
    form = wait_for_consent_page(driver)
    form.element.find_element(By.CSS_SELECTOR, f"button[name=consent][value={value}]").click()
    wait_for_new_page(driver, form.element)


def visible_text(driver: WebDriver) -> str:
    try:
        return str(driver.find_element(By.TAG_NAME, "body").text)
    except NoSuchElementException:
        return ""


def listed_items(driver: WebDriver) -> list[str]:
    """The text of every non-empty list item on the page (the consent page lists one per scope)."""
    return [text for item in driver.find_elements(By.TAG_NAME, "li") if (text := item.text.strip())]


def sign_in(
    driver: WebDriver, site: SignInSite, request: AuthorizationRequest, username: str
) -> dict[str, str]:
    """Open the authorization URL, sign in on the login page; the callback's query (a code)."""
    driver.get(request.url(site))
    submit_login(driver, username, PASSWORD)
    callback = site.callbacks.wait("/callback", request.state)
    assert "code" in callback, callback
    return callback


# --- tokens -----------------------------------------------------------------------------------------
def authlib_client(**kwargs: Any) -> Any:
    """Authlib's (synchronous) httpx OAuth 2 client, without its warning about preferring httpx2.

    Authlib installs an "always" filter for its own warnings on import (see
    tests.support.authlib_async_client), so only a local filter silences it.
    """
    from authlib.deprecate import AuthlibDeprecationWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The httpx module is deprecated", AuthlibDeprecationWarning)
        from authlib.integrations.httpx_client import OAuth2Client
    return OAuth2Client(timeout=10, **kwargs)


def redeem(site: SignInSite, request: AuthorizationRequest, callback: dict[str, str]) -> dict[str, Any]:
    """Redeem the callback's code with Authlib, as the request's client (public or client_secret_basic)."""
    secret = site.secret_of(request.client_id)
    method = "client_secret_basic" if secret else "none"
    with authlib_client(
        client_id=request.client_id, client_secret=secret, token_endpoint_auth_method=method
    ) as client:
        token = client.fetch_token(
            site.endpoint("token"),
            authorization_response=request.redirect_uri + "?" + urlencode(callback),
            state=request.state,  # Authlib compares it with the callback's
            redirect_uri=request.redirect_uri,
            code_verifier=request.code_verifier,
        )
    return dict(token)


def _at_hash(access_token: str, alg: str) -> str:
    digest: Callable[[bytes], Any] = hashlib.sha512 if alg == "EdDSA" else hashlib.sha256
    full = digest(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(full[: len(full) // 2]).rstrip(b"=").decode("ascii")


def verify_id_token(
    site: SignInSite, id_token: str, *, client_id: str, nonce: str, access_token: str
) -> dict[str, Any]:
    """Verify an ID token with PyJWT against the JWKS: signature, iss, aud, nonce, at_hash, sid."""
    header = jwt.get_unverified_header(id_token)
    assert header["typ"] == "JWT", header
    assert header.get("kid"), header
    jwks = jwt.PyJWKClient(str(site.metadata["jwks_uri"]), cache_keys=False)
    key = jwks.get_signing_key_from_jwt(id_token)
    assert header["alg"] in site.metadata["id_token_signing_alg_values_supported"], header
    claims: dict[str, Any] = jwt.decode(
        id_token,
        key,
        algorithms=[header["alg"]],
        audience=client_id,
        issuer=site.issuer,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "auth_time"]},
    )
    assert claims["aud"] == client_id or claims["aud"] == [client_id], claims["aud"]
    assert claims["nonce"] == nonce
    assert claims["at_hash"] == _at_hash(access_token, header["alg"])
    access = jwt.decode(access_token, options={"verify_signature": False})
    assert claims["sub"] == access["sub"]
    assert claims["sid"] == access["sid"]
    assert claims["auth_time"] <= claims["iat"] + 1
    return claims


def get_json(url: str, access_token: str) -> httpx.Response:
    return httpx.get(url, headers={"Authorization": f"Bearer {access_token}"}, timeout=10)
