"""The hosted pages (authsvc.web.pages): complete, accessible, escaped, and sent with their defences.

Every assertion reads the rendered HTML through a parser, as a browser or a test client would.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from jinja2 import TemplateSyntaxError
from starlette.responses import HTMLResponse

from authsvc.web.pages import Pages

HOSTILE = '"><script>alert(1)</script><input name="x'
HIDDEN = {"interaction": "i-123", "csrf_token": HOSTILE, "state": "a&b<c>'d"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    text: str = ""


class Document(HTMLParser):
    """Start tags in order, each with the text inside it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.doctype = ""
        self._open: list[Element] = []

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs))
        self.elements.append(element)
        if tag not in {"input", "meta", "link", "br", "img"}:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self._open and self._open.pop().tag != tag:
            pass

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data

    def all(self, tag: str, **attrs: str) -> list[Element]:
        return [
            e for e in self.elements if e.tag == tag and all(e.attrs.get(k) == v for k, v in attrs.items())
        ]

    def one(self, tag: str, **attrs: str) -> Element:
        found = self.all(tag, **attrs)
        assert len(found) == 1, f"{len(found)} <{tag} {attrs}>"
        return found[0]

    def hidden(self) -> list[tuple[str | None, str | None]]:
        return [(e.attrs.get("name"), e.attrs.get("value")) for e in self.all("input", type="hidden")]

    def words(self) -> str:
        return " ".join(self.one("main").text.split())


def parse(response: HTMLResponse) -> Document:
    document = Document()
    document.feed(bytes(response.body).decode("utf-8"))
    document.close()
    return document


def _pages() -> dict[str, Callable[[Pages], HTMLResponse]]:
    return {
        "login": lambda p: p.login(action="/authorize", hidden=HIDDEN, client_name="Acme"),
        "login with error": lambda p: p.login(
            action="/authorize", hidden=HIDDEN, client_name="Acme", username="alice", error="Wrong."
        ),
        "consent": lambda p: p.consent(
            action="/authorize", hidden=HIDDEN, client_name="Acme", username="alice", scopes=["openid"]
        ),
        "error": lambda p: p.error(title="Unknown application", message="Not registered.", status_code=400),
        "logout_confirm": lambda p: p.logout_confirm(action="/logout", hidden=HIDDEN, client_name="Acme"),
        "logged_out": lambda p: p.logged_out(),
    }


PAGES = _pages()


@pytest.fixture(scope="module")
def pages() -> Pages:
    return Pages()


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_page_is_a_complete_accessible_document_without_script(pages: Pages, page: str) -> None:
    response = PAGES[page](pages)
    document = parse(response)
    assert document.doctype.lower() == "doctype html"
    assert document.one("html").attrs["lang"] == "en"
    assert "width=device-width" in (document.one("meta", name="viewport").attrs["content"] or "")
    document.one("main")
    assert document.one("h1").text.strip()
    assert document.one("title").text.strip()
    assert document.all("script") == []
    assert b"<script" not in bytes(response.body).lower()
    assert document.all("a") == []


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_page_is_sent_with_its_defences(pages: Pages, page: str) -> None:
    response = PAGES[page](pages)
    headers = response.headers
    nonce = parse(response).one("style").attrs["nonce"]
    assert nonce and re.fullmatch(r"[A-Za-z0-9_-]{22,}", nonce)
    assert headers["content-security-policy"] == (
        f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
        "base-uri 'none'; frame-ancestors 'none'"
    )
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert headers["pragma"] == "no-cache"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-type"] == "text/html; charset=utf-8"


def test_the_nonce_is_fresh_for_every_response(pages: Pages) -> None:
    nonces = {parse(pages.logged_out()).one("style").attrs["nonce"] for _ in range(20)}
    assert len(nonces) == 20


def test_the_login_form_ties_labels_to_inputs_for_password_managers(pages: Pages) -> None:
    response = pages.login(action="/authorize", hidden=HIDDEN, client_name="Acme")
    document = parse(response)
    assert response.status_code == 200
    form = document.one("form")
    assert (form.attrs["method"], form.attrs["action"]) == ("post", "/authorize")
    for label in document.all("label"):
        assert len(document.all("input", id=label.attrs["for"] or "")) == 1
    username = document.one("input", id="username")
    password = document.one("input", id="password")
    assert {"username", "password"} == {label.attrs["for"] for label in document.all("label")}
    assert username.attrs["name"] == "username"
    assert username.attrs["autocomplete"] == "username"
    assert username.attrs["value"] == ""
    assert "required" in username.attrs and "autofocus" in username.attrs
    assert password.attrs["name"] == "password"
    assert password.attrs["type"] == "password"
    assert password.attrs["autocomplete"] == "current-password"
    assert "required" in password.attrs
    assert document.one("button", type="submit").text.strip() == "Sign in"
    assert document.all("p", role="alert") == []
    assert "Acme" in document.words()


def test_the_login_form_shown_again_keeps_the_username_and_says_what_went_wrong(pages: Pages) -> None:
    response = pages.login(
        action="/authorize",
        hidden=HIDDEN,
        client_name="Acme",
        username="alice",
        error="The username or password is incorrect.",
        status_code=429,
    )
    document = parse(response)
    assert response.status_code == 429
    assert document.one("input", id="username").attrs["value"] == "alice"
    assert document.one("input", id="password").attrs.get("value") is None
    alerts = [e for e in document.elements if e.attrs.get("role") == "alert"]
    assert [a.text.strip() for a in alerts] == ["The username or password is incorrect."]


@pytest.mark.parametrize("page", ["login", "login with error", "consent", "logout_confirm"])
def test_hidden_fields_come_back_in_order_and_verbatim(pages: Pages, page: str) -> None:
    document = parse(PAGES[page](pages))
    assert document.hidden() == list(HIDDEN.items())
    assert [e.attrs.get("name") for e in document.all("input") if e.attrs.get("name") == "x"] == []


def test_nothing_a_user_or_client_controls_is_rendered_as_markup(pages: Pages) -> None:
    login = pages.login(
        action="/authorize", hidden=HIDDEN, client_name=HOSTILE, username=HOSTILE, error=HOSTILE
    )
    consent = pages.consent(
        action="/authorize", hidden=HIDDEN, client_name=HOSTILE, username=HOSTILE, scopes=[HOSTILE]
    )
    error = pages.error(title=HOSTILE, message=HOSTILE, status_code=400)
    logout = pages.logout_confirm(action="/logout", hidden=HIDDEN, client_name=HOSTILE)
    for response in (login, consent, error, logout):
        document = parse(response)
        assert b"<script" not in bytes(response.body).lower()
        assert document.all("input", name="x") == []
        assert document.words().count(HOSTILE) >= 1
    document = parse(login)
    assert document.one("input", id="username").attrs["value"] == HOSTILE
    assert document.one("p", role="alert").text == HOSTILE
    assert parse(consent).one("code").text == HOSTILE
    assert parse(error).one("h1").text == HOSTILE
    assert parse(error).one("title").text == HOSTILE


def test_consent_says_who_asks_for_what(pages: Pages) -> None:
    scopes = ["openid", "profile", "email", "offline_access", "photos:read"]
    response = pages.consent(
        action="/authorize", hidden=HIDDEN, client_name="Acme Photos", username="alice", scopes=scopes
    )
    document = parse(response)
    assert response.status_code == 200
    form = document.one("form")
    assert (form.attrs["method"], form.attrs["action"]) == ("post", "/authorize")
    words = document.words()
    assert "Acme Photos" in words and "alice" in words
    items = [" ".join(li.text.split()) for li in document.all("li")]
    assert items == [
        "Confirm who you are",
        "Your name and username",
        "Your email address",
        "Stay signed in (keep access when you are away)",
        "photos:read",
    ]
    assert [code.text for code in document.all("code")] == ["photos:read"]
    buttons = {b.attrs["value"]: b for b in document.all("button", type="submit", name="consent")}
    assert buttons["allow"].text.strip() == "Allow"
    assert buttons["deny"].text.strip() == "Deny"
    assert len(document.all("button")) == 2


@pytest.mark.parametrize("client_name", ["Acme Photos", None])
def test_logout_asks_before_it_signs_out(pages: Pages, client_name: str | None) -> None:
    document = parse(pages.logout_confirm(action="/logout", hidden=HIDDEN, client_name=client_name))
    form = document.one("form")
    assert (form.attrs["method"], form.attrs["action"]) == ("post", "/logout")
    button = document.one("button", type="submit", name="logout", value="yes")
    assert button.text.strip() == "Sign out"
    assert ("Acme Photos" in document.words()) == (client_name is not None)


def test_logged_out_and_error_pages_say_what_happened(pages: Pages) -> None:
    assert "You have signed out." in parse(pages.logged_out()).words()
    response = pages.error(title="Request refused", message="The form has expired.", status_code=403)
    document = parse(response)
    assert response.status_code == 403
    assert document.one("h1").text.strip() == "Request refused"
    assert "The form has expired." in document.words()
    assert document.all("form") == []


def test_a_templates_dir_replaces_only_the_pages_it_holds(tmp_path: Path) -> None:
    (tmp_path / "login.html").write_text(
        '{% extends "base.html" %}{% block title %}Welcome{% endblock %}'
        "{% block content %}<h1>Welcome to {{ client_name }}</h1>{% endblock %}",
        encoding="utf-8",
    )
    pages = Pages(tmp_path)
    login = pages.login(action="/authorize", hidden=HIDDEN, client_name=HOSTILE)
    document = parse(login)
    assert document.one("h1").text == f"Welcome to {HOSTILE}"
    assert document.all("script") == []
    assert f"'nonce-{document.one('style').attrs['nonce']}'" in login.headers["content-security-policy"]
    consent = parse(
        pages.consent(action="/a", hidden={}, client_name="Acme", username="al", scopes=["email"])
    )
    assert consent.one("h1").text.strip() == "Allow access?"


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_templates_dir_that_is_not_a_directory_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "templates"
    if kind == "file":
        path.write_text("not a directory", encoding="utf-8")
    with pytest.raises(NotADirectoryError, match="templates"):
        Pages(path)


def test_a_broken_replacement_template_is_refused_at_once(tmp_path: Path) -> None:
    (tmp_path / "consent.html").write_text("{% block content %}", encoding="utf-8")
    with pytest.raises(TemplateSyntaxError):
        Pages(tmp_path)
