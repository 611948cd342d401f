"""``console_routes(public_app)``: the console's pages and forms as routes of the admin app.

Every page needs a console session; without one a GET starts the sign-in. Every
form is a POST carrying the session's CSRF token (403 without it: nothing is
done); after it the browser is sent to a page (post/redirect/get) that shows
what happened, except for answers shown once (a new client secret).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authsvc.api.browser_pages import query_pairs
from authsvc.console import clients_pages, keys_pages, users_pages
from authsvc.console.context import ApiRefused, ConsoleContext, SignInAgain, see_other
from authsvc.console.sessions import ConsoleSession
from authsvc.console.signin import ConsoleSignIn

__all__ = ["console_routes"]

View = Callable[[ConsoleContext, Request, ConsoleSession], Awaitable[Response]]
Action = Callable[[ConsoleContext, Request, ConsoleSession, dict[str, str]], Awaitable[Response]]
MAX_FORM = 16 * 1024


async def _form(request: Request) -> dict[str, str] | None:
    if (
        request.headers.get("content-type", "").split(";")[0].strip().lower()
        != "application/x-www-form-urlencoded"
    ):
        return None
    raw = await request.body()
    if len(raw) > MAX_FORM:
        return None
    try:
        pairs = query_pairs(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None
    return dict(pairs)


def console_routes(public_app: Any) -> list[Route]:
    ctx = ConsoleContext(public_app)
    sign_in = ConsoleSignIn(ctx)

    def view(handler: View) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = await ctx.session(request)
            if session is None:
                return await sign_in.start(request)
            try:
                return await handler(ctx, request, session)
            except SignInAgain:
                return await sign_in.start(request)
            except ApiRefused as refused:
                return ctx.pages.message(
                    "Not found" if refused.status == 404 else "Refused",
                    refused.detail,
                    refused.status,
                    link=("Back to the console", "/console"),
                )
            finally:
                await ctx.sessions.save(session)

        return endpoint

    def action(handler: Action, back: Callable[[Request], str]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = await ctx.session(request)
            if session is None:
                return ctx.pages.message(
                    "Your console session has ended",
                    "Nothing was changed. Sign in again and repeat what you were doing.",
                    403,
                    link=("Sign in", back(request)),
                )
            form = await _form(request)
            if form is None or not session.csrf_valid(form.get("csrf_token")):
                return ctx.pages.message(
                    "The form expired or came from another site",
                    "Nothing was changed.",
                    403,
                    link=("Back to the console", back(request)),
                )
            try:
                return await handler(ctx, request, session, form)
            except SignInAgain:
                return see_other(back(request))
            except ApiRefused as refused:
                session.say(refused.detail, "error")
                return see_other(back(request))
            finally:
                await ctx.sessions.save(session)

        return endpoint

    async def login(request: Request) -> Response:
        return await sign_in.start(request, prompt="login")

    async def callback(request: Request) -> Response:
        return await sign_in.callback(request)

    async def logout(
        ctx_: ConsoleContext, request: Request, session: ConsoleSession, _f: dict[str, str]
    ) -> Response:
        return await sign_in.logout(request, session)

    async def signed_out(_request: Request) -> Response:
        return sign_in.signed_out()

    def console(_request: Request) -> str:
        return "/console"

    def client(request: Request) -> str:
        return f"/console/clients/{quote(request.path_params['client_id'], safe='')}"

    def user(request: Request) -> str:
        return f"/console/users/{quote(request.path_params['name'], safe='')}"

    post = ["POST"]
    return [
        Route("/console", view(keys_pages.keys_page), methods=["GET"]),
        Route("/console/login", login, methods=["GET"]),
        Route("/console/callback", callback, methods=["GET"]),
        Route("/console/logout", action(logout, console), methods=post),
        Route("/console/signed-out", signed_out, methods=["GET"]),
        Route("/console/keys/rotate", action(keys_pages.rotate_keys, console), methods=post),
        Route("/console/keys/{kid}/revoke", action(keys_pages.revoke_key, console), methods=post),
        Route("/console/clients", view(clients_pages.clients_page), methods=["GET"]),
        # A client id may hold "/": its routes take the rest of the path, the actions first (a GET
        # of ".../remove" falls through to the page of a client named so).
        Route(
            "/console/clients/{client_id:path}/secret",
            action(clients_pages.rotate_secret, client),
            methods=post,
        ),
        Route(
            "/console/clients/{client_id:path}/remove",
            action(clients_pages.remove_client, client),
            methods=post,
        ),
        Route("/console/clients/{client_id:path}", view(clients_pages.client_page), methods=["GET"]),
        Route("/console/users", view(users_pages.users_page), methods=["GET"]),
        Route("/console/users/{name}", view(users_pages.user_page), methods=["GET"]),
        Route("/console/users/{name}/disabled", action(users_pages.set_disabled, user), methods=post),
        Route("/console/users/{name}/password", action(users_pages.set_password, user), methods=post),
        Route("/console/users/{name}/sessions", action(users_pages.log_out_everywhere, user), methods=post),
    ]
