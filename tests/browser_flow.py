"""A browser without a browser: the hosted sign-in pages driven with httpx.

``sign_in`` does what a person at a browser does: GET the authorization URL,
read the page's one form (its ``action`` and every hidden input, never
hard-coded), post the username and password with the same cookies, answer
the consent page if one comes, follow the service's own redirects, and stop
at the ``303`` to the client's redirect URI. It returns that redirect's query
(``code``, ``state``, ``iss`` or ``error``...). It works with a sync
``httpx.Client`` and an ``httpx.AsyncClient`` (then it returns a coroutine);
the client must not follow redirects itself and carries the cookies (one
client = one browser).

The pages are parsed with ``html.parser`` only; the helpers (``Form``,
``page_form``, ``pkce_pair``, ``authorization_url``) serve the attack tests too.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Awaitable, Generator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, overload
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx

__all__ = [
    "Form",
    "SignInError",
    "authorization_url",
    "callback_query",
    "forms_of",
    "page_form",
    "pkce_pair",
    "sign_in",
    "sign_in_location",
]

REDIRECT_STATUSES = (301, 302, 303, 307, 308)


class SignInError(AssertionError):
    """The pages did not lead to the redirect URI: the last answer is attached."""

    def __init__(self, message: str, response: httpx.Response | None = None) -> None:
        if response is not None:
            message = f"{message}: {response.status_code} {response.request.url}\n{response.text[:2000]}"
        super().__init__(message)
        self.response = response


@dataclass
class Form:
    """One ``<form>`` of a page: where it posts, what it carries, which buttons it has."""

    action: str  # as written in the page (resolve with ``url``)
    method: str
    fields: dict[str, str] = field(default_factory=dict)  # every named input with a value (hidden too)
    input_attrs: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> the input's attributes
    buttons: list[dict[str, str]] = field(default_factory=list)  # each submit button's attributes

    @property
    def hidden(self) -> dict[str, str]:
        return {
            name: self.fields.get(name, "")
            for name, attrs in self.input_attrs.items()
            if attrs.get("type", "").lower() == "hidden"
        }

    @property
    def is_login(self) -> bool:
        return any(attrs.get("type", "").lower() == "password" for attrs in self.input_attrs.values())

    @property
    def is_consent(self) -> bool:
        return any(button.get("name") == "consent" for button in self.buttons)

    def button_values(self, name: str) -> list[str]:
        return [b.get("value", "") for b in self.buttons if b.get("name") == name]

    def url(self, page: httpx.Response | str) -> str:
        """The absolute URL the form posts to (an empty action posts to the page itself)."""
        base = str(page.url) if isinstance(page, httpx.Response) else page
        return urljoin(base, self.action) if self.action else base


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._current: Form | None = None
        self._button: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): (value or "") for name, value in attrs}
        if tag == "form":
            self._current = Form(action=values.get("action", ""), method=values.get("method", "get").lower())
            self.forms.append(self._current)
            return
        if self._current is None:
            return
        if tag == "input":
            name = values.get("name")
            kind = values.get("type", "text").lower()
            if kind == "submit":
                self._current.buttons.append(values)
            elif name:
                self._current.input_attrs[name] = values
                if kind not in ("checkbox", "radio") or "checked" in values:
                    self._current.fields[name] = values.get("value", "")
        elif tag == "button":
            if values.get("type", "submit").lower() == "submit":
                self._current.buttons.append(values)
        elif tag in ("textarea", "select") and values.get("name"):
            self._current.input_attrs[values["name"]] = values
            self._current.fields.setdefault(values["name"], "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def forms_of(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms


def page_form(response: httpx.Response) -> Form:
    """The page's one POST form (the spec: each hosted page has exactly one)."""
    if not response.headers.get("content-type", "").startswith("text/html"):
        raise SignInError("expected an HTML page", response)
    posting = [f for f in forms_of(response.text) if f.method == "post"]
    if len(posting) != 1:
        raise SignInError(f"expected one POST form, found {len(posting)}", response)
    return posting[0]


def pkce_pair() -> tuple[str, str]:
    """A code_verifier and its S256 code_challenge (RFC 7636 §4.1-4.2)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorization_url(issuer: str, **params: str) -> str:
    return f"{issuer}/authorize?{urlencode(params)}"


def callback_query(location: str) -> dict[str, str]:
    """The query of a redirect to the client; every parameter must appear once."""
    raw = parse_qs(urlsplit(location).query, keep_blank_values=True)
    repeated = [name for name, values in raw.items() if len(values) != 1]
    assert not repeated, f"repeated parameters in the redirect: {repeated}"
    return {name: values[0] for name, values in raw.items()}


# --- the driver ------------------------------------------------------------------------------------
_Step = tuple[str, str, dict[str, str] | None]


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _flow(
    authorize_url: str, username: str, password: str, consent: str, redirect_uri: str | None
) -> Generator[_Step, httpx.Response, httpx.Response]:
    """The steps of a sign-in; yields requests, receives their answers, returns the final redirect."""
    stop_at = redirect_uri or callback_query(authorize_url).get("redirect_uri")
    service = _origin(authorize_url)
    response = yield ("GET", authorize_url, None)
    logged_in = False
    answered_consent = False
    for _ in range(10):
        if response.status_code in REDIRECT_STATUSES:
            location = urljoin(str(response.request.url), response.headers["location"])
            to_client = (
                location.split("?", 1)[0].split("#", 1)[0] == stop_at
                if stop_at
                else _origin(location) != service
            )
            if to_client or _origin(location) != service:
                if response.status_code != 303:
                    raise SignInError("the redirect to the client is not a 303", response)
                return response
            response = yield ("GET", location, None)
            continue
        if response.status_code != 200:
            raise SignInError("the sign-in stopped", response)
        form = page_form(response)
        data = dict(form.fields)
        if form.is_login:
            if logged_in:
                raise SignInError("the login form came back (wrong password?)", response)
            data.update(username=username, password=password)
            logged_in = True
        elif form.is_consent:
            if answered_consent:
                raise SignInError("the consent page came back", response)
            if consent not in form.button_values("consent"):
                raise SignInError(f"no consent button with value {consent!r}", response)
            data["consent"] = consent
            answered_consent = True
        else:
            raise SignInError("neither a login nor a consent form", response)
        response = yield ("POST", form.url(response), data)
    raise SignInError("too many pages", response)


def _headers(method: str, url: str) -> dict[str, str]:
    """What a browser adds: an Origin on every POST (Chrome and Firefox both do)."""
    if method != "POST":
        return {}
    scheme, netloc = _origin(url)
    return {"Origin": f"{scheme}://{netloc}"}


def _run_sync(client: httpx.Client, flow: Generator[_Step, httpx.Response, httpx.Response]) -> httpx.Response:
    method, url, data = next(flow)
    while True:
        response = client.request(method, url, data=data, headers=_headers(method, url))
        try:
            method, url, data = flow.send(response)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


async def _run_async(
    client: httpx.AsyncClient, flow: Generator[_Step, httpx.Response, httpx.Response]
) -> httpx.Response:
    method, url, data = next(flow)
    while True:
        response = await client.request(method, url, data=data, headers=_headers(method, url))
        try:
            method, url, data = flow.send(response)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


@overload
def sign_in_location(
    client: httpx.Client,
    authorize_url: str,
    username: str,
    password: str,
    consent: str = ...,
    *,
    redirect_uri: str | None = ...,
) -> str: ...
@overload
def sign_in_location(
    client: httpx.AsyncClient,
    authorize_url: str,
    username: str,
    password: str,
    consent: str = ...,
    *,
    redirect_uri: str | None = ...,
) -> Awaitable[str]: ...
def sign_in_location(
    client: httpx.Client | httpx.AsyncClient,
    authorize_url: str,
    username: str,
    password: str,
    consent: str = "allow",
    *,
    redirect_uri: str | None = None,
) -> str | Awaitable[str]:
    """Sign in through the pages; the absolute URL of the final redirect to the client.

    ``redirect_uri`` names where the flow ends when the authorization URL does not
    carry it (a PAR ``request_uri``); without either, at the first redirect off the service.
    """
    flow = _flow(authorize_url, username, password, consent, redirect_uri)
    if isinstance(client, httpx.AsyncClient):

        async def run() -> str:
            return (await _run_async(client, flow)).headers["location"]

        return run()
    return _run_sync(client, flow).headers["location"]


@overload
def sign_in(
    client: httpx.Client,
    authorize_url: str,
    username: str,
    password: str,
    consent: str = ...,
    *,
    redirect_uri: str | None = ...,
) -> dict[str, str]: ...
@overload
def sign_in(
    client: httpx.AsyncClient,
    authorize_url: str,
    username: str,
    password: str,
    consent: str = ...,
    *,
    redirect_uri: str | None = ...,
) -> Awaitable[dict[str, str]]: ...
def sign_in(
    client: Any,
    authorize_url: str,
    username: str,
    password: str,
    consent: str = "allow",
    *,
    redirect_uri: str | None = None,
) -> dict[str, str] | Awaitable[dict[str, str]]:
    """Sign in through the pages; the query of the final redirect to the client."""
    location = sign_in_location(client, authorize_url, username, password, consent, redirect_uri=redirect_uri)
    if isinstance(location, str):
        return callback_query(location)

    async def parse() -> dict[str, str]:
        return callback_query(await location)

    return parse()
