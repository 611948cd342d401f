"""What every console page works with: the service, the console's sessions, the admin API.

A page is a client of the admin API: it calls the admin app's handlers in-process
(an ASGI transport to the app the request arrived at) with the session's access
token, so the console can do only what that token may, through the same checks
and audit events as any other caller. A 401 from it means the token ended (a
logout, a disable, a revoked key): the session ends and the admin signs in again.
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from authsvc.clients import console_client
from authsvc.console.render import ConsolePages
from authsvc.console.sessions import ConsoleSession, ConsoleSessions, cookie_name
from authsvc.runtime import Services
from authsvc.store.records import Client

__all__ = ["ApiRefused", "ConsoleContext", "SignInAgain", "see_other"]

SESSION_COOKIE = "authsvc_console"
NAVIGATION = (
    ("keys", "Keys", "/console"),
    ("clients", "Clients", "/console/clients"),
    ("users", "Users", "/console/users"),
)


class SignInAgain(Exception):
    """The admin API refused the session's token: it has ended."""


class ApiRefused(Exception):
    """The admin API said no (its problem's fixed ``detail``, never echoing input)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def see_other(location: str) -> Response:
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


class ConsoleContext:
    def __init__(self, public_app: Any) -> None:
        self.app = public_app  # the public AuthsvcApp: its services exist once its lifespan ran
        self.sessions = ConsoleSessions(lambda: self.services.browser_store)
        self.pages = ConsolePages()
        self._client: Client | None = None

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    def now(self) -> float:
        return self.services.clock.now()

    @property
    def client(self) -> Client | None:
        """The console's built-in client (None when the admin listener is off)."""
        if self._client is None:
            self._client = console_client(self.services.settings)
        return self._client

    @staticmethod
    def secure(request: Request) -> bool:
        return request.url.scheme == "https"

    @staticmethod
    def origin(request: Request) -> str:
        """This listener's origin as the browser reached it."""
        return f"{request.url.scheme}://{request.url.netloc}"

    def session_cookie(self, request: Request) -> str:
        return cookie_name(SESSION_COOKIE, self.secure(request))

    async def session(self, request: Request) -> ConsoleSession | None:
        return await self.sessions.get(request.cookies.get(self.session_cookie(request)), self.now())

    async def api(
        self, request: Request, token: str, method: str, path: str, body: dict[str, Any] | None = None
    ) -> Any:
        """The admin API's answer (its JSON, or None for a 204)."""
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(request.app), base_url="http://console.internal"
        ) as http:
            answer = await http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
        if answer.status_code == 401:
            raise SignInAgain
        if answer.status_code >= 400:
            try:
                detail = str(answer.json().get("detail") or "The admin API refused.")
            except ValueError:
                detail = "The admin API refused."
            raise ApiRefused(answer.status_code, detail)
        return answer.json() if answer.status_code != 204 else None

    async def call(
        self,
        request: Request,
        session: ConsoleSession,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """``api`` with the session's token; a refused token ends the session."""
        try:
            return await self.api(request, session.access_token, method, path, body)
        except SignInAgain:
            await self.sessions.end(request.cookies.get(self.session_cookie(request)), self.now())
            raise

    def page(
        self,
        request: Request,
        session: ConsoleSession,
        name: str,
        section: str,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        """A page of the signed-in console: navigation, who is signed in, messages, the CSRF token."""
        return self.pages.render(
            name,
            status_code,
            session=session,
            navigation=NAVIGATION,
            section=section,
            messages=session.take_messages(),
            csrf=session.csrf,
            **context,
        )
