"""The hosted HTML pages of the browser flow: sign-in, consent, sign-out and errors.

They are the only HTML authsvc serves, and every one must carry the same defences:
autoescaped templates with ``StrictUndefined``, no script at all, one inline style
sheet allowed by a fresh CSP nonce, no framing, no caching, no referrer. Rendering
them in one place keeps those rules in one place; the handlers pick a page and add
cookies (or ``Retry-After``) to the response they get back.

Templates come from ``templates_dir`` (``AUTHSVC_TEMPLATES_DIR``) first, then from
this package, so a replacement directory may override any subset. Each page gets
``nonce`` (for ``<style nonce>`` in ``base.html``) and:

    login.html           action, hidden, client_name, username, error (str or None)
    consent.html         action, hidden, client_name, username, scopes (.name, .description or None)
    error.html           title, message
    logout_confirm.html  action, hidden, client_name (str or None)
    logged_out.html      nothing more

``hidden`` is a list of ``(name, value)`` pairs, rendered as hidden inputs in order.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, Template, TemplateError
from starlette.responses import HTMLResponse

from authsvc.errors import ConfigError
from authsvc.settings import AuthSettings

__all__ = ["PACKAGE_TEMPLATES", "Pages", "load_pages", "page_headers"]

PACKAGE_TEMPLATES = Path(__file__).resolve().parent / "templates"
_PAGES = ("login.html", "consent.html", "error.html", "logout_confirm.html", "logged_out.html")

_SCOPE_DESCRIPTIONS = {
    "openid": "Confirm who you are",
    "profile": "Your name and username",
    "email": "Your email address",
    "offline_access": "Stay signed in (keep access when you are away)",
}


class _Scope(NamedTuple):
    name: str
    description: str | None


class Pages:
    """Renders the hosted pages; templates from AUTHSVC_TEMPLATES_DIR first, then the package's."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        loaders = [FileSystemLoader(PACKAGE_TEMPLATES)]
        if templates_dir is not None:
            if not templates_dir.exists():
                raise NotADirectoryError(f"The templates directory {templates_dir} does not exist.")
            if not templates_dir.is_dir():
                raise NotADirectoryError(f"The templates directory {templates_dir} is not a directory.")
            loaders.insert(0, FileSystemLoader(templates_dir))
        environment = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        # Compiled now: a broken replacement template stops the start, not a sign-in.
        self._templates: dict[str, Template] = {name: environment.get_template(name) for name in _PAGES}

    def login(
        self,
        *,
        action: str,
        hidden: Mapping[str, str],
        client_name: str,
        username: str = "",
        error: str | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        return self._render(
            "login.html",
            status_code,
            action=action,
            hidden=list(hidden.items()),
            client_name=client_name,
            username=username,
            error=error,
        )

    def consent(
        self,
        *,
        action: str,
        hidden: Mapping[str, str],
        client_name: str,
        username: str,
        scopes: Sequence[str],
    ) -> HTMLResponse:
        return self._render(
            "consent.html",
            200,
            action=action,
            hidden=list(hidden.items()),
            client_name=client_name,
            username=username,
            scopes=[_Scope(scope, _SCOPE_DESCRIPTIONS.get(scope)) for scope in scopes],
        )

    def error(self, *, title: str, message: str, status_code: int) -> HTMLResponse:
        return self._render("error.html", status_code, title=title, message=message)

    def logout_confirm(
        self, *, action: str, hidden: Mapping[str, str], client_name: str | None
    ) -> HTMLResponse:
        return self._render(
            "logout_confirm.html", 200, action=action, hidden=list(hidden.items()), client_name=client_name
        )

    def logged_out(self) -> HTMLResponse:
        return self._render("logged_out.html", 200)

    def _render(self, name: str, status_code: int, **context: Any) -> HTMLResponse:
        nonce = secrets.token_urlsafe(18)
        body = self._templates[name].render(nonce=nonce, **context)
        return HTMLResponse(body, status_code=status_code, headers=page_headers(nonce))


def page_headers(nonce: str) -> dict[str, str]:
    # No form-action: Chromium applies it to the redirect that follows a form POST, and
    # the sign-in POST redirects to the client's redirect URI, on another origin.
    policy = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
        "base-uri 'none'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
        "X-Content-Type-Options": "nosniff",
    }


def load_pages(settings: AuthSettings) -> Pages:
    """The pages of ``settings``; a missing directory or a broken template is a ConfigError
    naming AUTHSVC_TEMPLATES_DIR."""
    try:
        return Pages(settings.templates_dir)
    except (OSError, TemplateError) as exc:
        raise ConfigError(f"AUTHSVC_TEMPLATES_DIR: {type(exc).__name__}: {exc}".splitlines()[0]) from None
