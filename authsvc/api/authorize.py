"""GET|POST /authorize: the authorization endpoint and its hosted pages' answers.

A request without ``interaction`` is a new authorization request (query on
GET, form on POST). A POST with ``interaction`` is one of the pages answering:
the login form or the consent form, accepted only with the CSRF token bound to
this browser's cookie (403 otherwise). Errors the client can be told about go
back to its redirect URI; the rest are an error page, never a redirect.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response

from authsvc.addresses import Network
from authsvc.api.browser_pages import BrowserPages, query_pairs
from authsvc.api.peer import request_address
from authsvc.api.routes import Endpoint
from authsvc.browser.cookies import Cookies
from authsvc.browser.flow import BrowserFlow
from authsvc.browser.requests import PARAMETERS, Untrusted, read_pairs
from authsvc.metrics import Metrics
from authsvc.runtime import Services

__all__ = ["ENDPOINT", "AuthorizeEndpoint"]

_HTML = {"text/html": {"schema": {"type": "string"}}}


class AuthorizeEndpoint:
    def __init__(self, flow: BrowserFlow, pages: BrowserPages, trusted_proxies: Sequence[Network]) -> None:
        self.flow = flow
        self.pages = pages
        self.trusted_proxies = trusted_proxies

    async def __call__(self, request: Request) -> Response:
        session_handle = request.cookies.get(self.pages.cookies.session)
        if request.method in ("GET", "HEAD"):
            pairs = query_pairs(request.url.query)
        else:
            if request.headers.get("content-type", "").split(";")[0].strip().lower() != (
                "application/x-www-form-urlencoded"
            ):
                return self.pages.error("The form could not be read.")
            try:
                pairs = query_pairs((await request.body()).decode("utf-8"))
            except UnicodeDecodeError:
                return self.pages.error("The form could not be read.")
            form = dict(pairs)
            if "interaction" in form:
                return await self._answer(request, form, session_handle)
        values, repeated = read_pairs(pairs)
        try:
            step = await self.flow.authorize(values, repeated, session_handle)
        except Untrusted as untrusted:
            return self.pages.error(untrusted.message)
        return self.pages.render(request, step)

    async def _answer(self, request: Request, form: dict[str, str], session_handle: str | None) -> Response:
        """The login or consent form, posted back."""
        handle = form["interaction"]
        if not Cookies.csrf_valid(self.pages.csrf_binding(request), handle, form.get("csrf_token")):
            return self.pages.error("The form expired or came from another site. Start again.", 403)
        try:
            if "consent" in form:
                step = await self.flow.decide(handle, session_handle, form["consent"] == "allow")
                return self.pages.render(request, step)
            address = request_address(request, self.trusted_proxies)
            signed_in = await self.flow.sign_in(
                handle, form.get("username", ""), form.get("password", ""), address
            )
        except Untrusted as untrusted:
            return self.pages.error(untrusted.message)
        return self.pages.render(request, signed_in.step, session_handle=signed_in.session_handle)


def _operation(method: str) -> dict[str, object]:
    parameters = [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}} for name in PARAMETERS
    ]
    operation: dict[str, object] = {
        "summary": "Authorization endpoint (RFC 6749 §3.1): the hosted sign-in and consent pages",
        "responses": {
            200: {"description": "The login or consent page", "content": _HTML},
            303: {"description": "Back to the client's redirect URI, with a code or an error"},
            400: {"description": "The request cannot be answered at its redirect URI", "content": _HTML},
            403: {"description": "A page's form without its CSRF token", "content": _HTML},
            429: {"description": "The login limits refused the attempt", "content": _HTML},
        },
    }
    if method == "get":
        operation["parameters"] = parameters
    else:
        operation["requestBody"] = {
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            **{name: {"type": "string"} for name in PARAMETERS},
                            **{
                                name: {"type": "string"}
                                for name in ("interaction", "csrf_token", "username", "password", "consent")
                            },
                        },
                    }
                }
            }
        }
    return operation


def _build(services: Services, _metrics: Metrics) -> AuthorizeEndpoint:
    return AuthorizeEndpoint(
        services.browser_flow, services.browser_pages, services.settings.trusted_proxy_networks
    )


ENDPOINT = Endpoint("/authorize", {"get": _operation("get"), "post": _operation("post")}, build=_build)
