"""GET /logout (OpenID Connect RP-Initiated Logout 1.0): end the browser session.

With a valid ``id_token_hint`` (one of our ID tokens; an expired one still
names who signs out) the browser session ends at once, with every refresh
family its sign-ins opened, and the browser goes to the client's registered
``post_logout_redirect_uri``. Without a hint a confirmation page comes first
(a cross-site GET must not sign anyone out); its POST, with the CSRF token
bound to the browser's cookie, does the same. An unregistered URI is an error
page, never a redirect.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from authsvc.api.browser_pages import BrowserPages, query_pairs
from authsvc.api.routes import Endpoint
from authsvc.browser.cookies import Cookies, digest, new_handle
from authsvc.browser.redirects import matches_registered, with_query
from authsvc.clients import ClientDirectory
from authsvc.clock import Clock
from authsvc.events import BrowserLoggedOut, Events
from authsvc.keys.ring import KeyRing
from authsvc.metrics import Metrics
from authsvc.runtime import Services
from authsvc.store.protocols import SessionStore
from authsvc.store.sql.browser import SqlBrowserStore
from authsvc.tokens.id_token import ID_TOKEN_TYP
from authsvc.tokens.validation import TokenRejected, check_token, peek_claims

__all__ = ["ENDPOINT", "LogoutEndpoint"]

_PARAMETERS = ("id_token_hint", "post_logout_redirect_uri", "state", "client_id")
_CONFIRM = "logout"  # the CSRF token of the confirmation form is bound to this purpose
_HTML = {"text/html": {"schema": {"type": "string"}}}


class _Refused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class LogoutEndpoint:
    def __init__(
        self,
        pages: BrowserPages,
        store: SqlBrowserStore,
        sessions: SessionStore,
        clients: ClientDirectory,
        keys: KeyRing,
        clock: Clock,
        events: Events,
        issuer: str,
    ) -> None:
        self.pages = pages
        self.store = store
        self.sessions = sessions
        self.clients = clients
        self.keys = keys
        self.clock = clock
        self.events = events
        self.issuer = issuer
        self.action = urlsplit(issuer).path + "/logout"  # the form posts back under the issuer's path

    async def __call__(self, request: Request) -> Response:
        if request.method in ("GET", "HEAD"):
            values = _values(query_pairs(request.url.query))
        else:
            values = _values(query_pairs((await request.body()).decode("utf-8", "replace")))
        try:
            hint = self._hint(values.get("id_token_hint"))
            client_id = hint.get("aud") if hint else values.get("client_id")
            if hint and values.get("client_id") not in (None, client_id):
                raise _Refused("The sign-out request names two different applications.")
            target = await self._target(values, client_id if isinstance(client_id, str) else None)
        except _Refused as refused:
            return self.pages.error(refused.message)
        binding = self.pages.csrf_binding(request)
        if request.method == "POST":
            if not Cookies.csrf_valid(binding, _CONFIRM, values.get("csrf_token")):
                return self.pages.error("The form expired or came from another site. Start again.", 403)
        elif hint is None:
            return self._confirm(values, client_id if isinstance(client_id, str) else None, binding)
        await self._end(request, hint)
        response: Response
        if target is None:
            response = self.pages.pages.logged_out()
        else:
            response = RedirectResponse(
                target, status_code=303, headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
            )
        self.pages.cookies.clear_session(response)
        return response

    def _hint(self, token: str | None) -> dict[str, object] | None:
        if token is None:
            return None
        peeked = peek_claims(token)
        exp = peeked[1].get("exp") if peeked else None
        if not isinstance(exp, int | float):
            raise _Refused("The sign-out request is not valid.")
        try:
            claims, _kid = check_token(
                token,
                typs=frozenset({ID_TOKEN_TYP.lower()}),
                key_for=self.keys.refresh_token_key,  # any kid whose tokens may still be alive
                issuer=self.issuer,
                now=min(self.clock.now(), float(exp) - 1),  # an expired hint still names who leaves
                skew=0,
                required=("sub", "aud"),
            )
        except TokenRejected:
            raise _Refused("The sign-out request is not valid.") from None
        return claims

    async def _target(self, values: dict[str, str], client_id: str | None) -> str | None:
        uri = values.get("post_logout_redirect_uri")
        if uri is None:
            return None
        client = await self.clients.get(client_id) if client_id else None
        if client is None or not matches_registered(uri, client.post_logout_redirect_uris):
            raise _Refused("The application asked to send you to an address it has not registered.")
        return with_query(uri, {"state": values.get("state")})

    def _confirm(self, values: dict[str, str], client_id: str | None, binding: str | None) -> Response:
        binding = binding or new_handle()
        hidden = {"csrf_token": Cookies.csrf_token(binding, _CONFIRM)}
        hidden.update(
            {name: values[name] for name in ("post_logout_redirect_uri", "state") if name in values}
        )
        if client_id is not None:
            hidden["client_id"] = client_id
        response = self.pages.pages.logout_confirm(action=self.action, hidden=hidden, client_name=client_id)
        self.pages.cookies.set_csrf(response, binding)
        return response

    async def _end(self, request: Request, hint: dict[str, object] | None) -> None:
        """End this browser's session, and the one the hint's sid came from."""
        now = self.clock.now()
        ended: set[str] = set()
        handle = request.cookies.get(self.pages.cookies.session)
        if handle:
            ended.add(digest(handle))
        sid = hint.get("sid") if hint else None
        if isinstance(sid, str):
            family = await self.sessions.get(sid)
            if family is not None and family.browser_session_id is not None:
                ended.add(family.browser_session_id)
        for browser_session_id in ended:
            browser_session = await self.store.browser_session(browser_session_id)
            if browser_session is None:
                continue
            count = await self.store.end_browser_session(browser_session_id, now)
            self.events.publish(BrowserLoggedOut(user_id=browser_session.user_id, count=count))


def _values(pairs: list[tuple[str, str]]) -> dict[str, str]:
    known = (*_PARAMETERS, "csrf_token", "logout")
    return {name: value for name, value in pairs if name in known and value}


def _build(services: Services, _metrics: Metrics) -> LogoutEndpoint:
    return LogoutEndpoint(
        services.browser_pages,
        services.browser_store,
        services.session_store,
        services.clients,
        services.keys,
        services.clock,
        services.events,
        services.tokens.issuer,
    )


_RESPONSES = {
    200: {"description": "The confirmation page, or the signed-out page", "content": _HTML},
    303: {"description": "To the registered post_logout_redirect_uri"},
    400: {"description": "An invalid hint or an unregistered URI", "content": _HTML},
    403: {"description": "A confirmation without its CSRF token", "content": _HTML},
}
ENDPOINT = Endpoint(
    "/logout",
    {
        "get": {
            "summary": "End the browser session (OpenID Connect RP-Initiated Logout)",
            "parameters": [
                {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
                for name in _PARAMETERS
            ],
            "responses": _RESPONSES,
        },
        "post": {
            "summary": "The confirmation form's answer",
            "requestBody": {
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "properties": {name: {"type": "string"} for name in (*_PARAMETERS, "csrf_token")},
                        }
                    }
                }
            },
            "responses": _RESPONSES,
        },
    },
    build=_build,
)
