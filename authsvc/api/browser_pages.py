"""What the browser endpoints share: reading their parameters and rendering a flow ``Step``.

The pages' forms post back with a pending-request handle and a CSRF token
bound to the ``authsvc_csrf`` cookie; a step becomes the login page, the
consent page (both carrying that pair), or a ``303`` to the client.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from authsvc.browser.cookies import Cookies, new_handle
from authsvc.browser.flow import Consent, Login, Redirect, Step
from authsvc.web.pages import Pages

__all__ = ["BrowserPages", "query_pairs"]

MAX_FIELDS = 64
#: The one "parameter" of an unreadable query or body: unknown to every reader, so ignored,
#: which leaves the required parameters missing.
MALFORMED = "\x00malformed"


def query_pairs(text: str) -> list[tuple[str, str]]:
    """Parameters of a query string or form body, in order (repeats kept: the caller decides)."""
    try:
        return parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return [(MALFORMED, "")]


class BrowserPages:
    """The HTML side of a step: pages with their CSRF pair and cookies, or the redirect."""

    def __init__(self, pages: Pages, cookies: Cookies, action: str) -> None:
        self.pages = pages
        self.cookies = cookies
        self.action = action

    def csrf_binding(self, request: Request) -> str | None:
        return request.cookies.get(self.cookies.csrf)

    def render(self, request: Request, step: Step, *, session_handle: str | None = None) -> Response:
        response: Response
        if isinstance(step, Redirect):
            response = RedirectResponse(
                step.location, status_code=303, headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
            )
        else:
            binding = self.csrf_binding(request) or new_handle()
            hidden = {"interaction": step.handle, "csrf_token": Cookies.csrf_token(binding, step.handle)}
            if isinstance(step, Login):
                response = self.pages.login(
                    action=self.action,
                    hidden=hidden,
                    client_name=step.client.id,
                    username=step.username,
                    error=step.error,
                    status_code=429 if step.retry_after is not None else 200,
                )
                if step.retry_after is not None:
                    response.headers["Retry-After"] = str(step.retry_after)
            else:
                assert isinstance(step, Consent)
                response = self.pages.consent(
                    action=self.action,
                    hidden=hidden,
                    client_name=step.client.id,
                    username=step.user.username,
                    scopes=step.scopes,
                )
            if self.csrf_binding(request) != binding:
                self.cookies.set_csrf(response, binding)
        if session_handle is not None:
            self.cookies.set_session(response, session_handle)
        return response

    def error(self, message: str, status_code: int = 400) -> Response:
        return self.pages.error(
            title="This sign-in request cannot continue", message=message, status_code=status_code
        )
