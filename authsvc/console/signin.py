"""Signing in to the console: authsvc's own authorization code flow, with PKCE, as ``authsvc-console``.

``start`` sends the browser to the issuer's ``/authorize`` (S256, ``state``,
``nonce``). The three secrets are derived from one random value kept in a
short-lived HttpOnly cookie (``authsvc_console_login``, SameSite=Lax so it
comes back on the redirect from the issuer), so any process of the service can
finish the sign-in and nothing waits in memory for a browser that never
returns. ``callback`` checks ``state`` and ``iss`` (RFC 9207), redeems the code
at the public app's ``/token`` in-process, and insists on ``authsvc:admin``;
the access token then stays server-side (``sessions.py``). ``logout`` ends the
console session and the browser's sign-in at the issuer (RP-initiated logout).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import Response

from authsvc.admin.guard import ADMIN_SCOPE
from authsvc.api.browser_pages import query_pairs
from authsvc.browser.cookies import new_handle
from authsvc.browser.redirects import matches_registered
from authsvc.clients import CONSOLE_CLIENT_ID, CONSOLE_SCOPES
from authsvc.console.context import ApiRefused, ConsoleContext, SignInAgain, see_other
from authsvc.console.sessions import ConsoleSession, cookie_name
from authsvc.grants.authorization_code import s256
from authsvc.tokens.validation import peek_claims

__all__ = ["LOGIN_COOKIE", "LOGIN_TTL", "ConsoleSignIn", "LoginSecrets"]

LOGIN_COOKIE = "authsvc_console_login"
LOGIN_TTL = 600  # seconds to sign in
_NOT_ADMIN = ("invalid_scope", "access_denied")


@dataclass(frozen=True, slots=True)
class LoginSecrets:
    """``state``, the PKCE verifier and ``nonce`` of one sign-in, derived from its cookie."""

    state: str
    verifier: str
    nonce: str

    @classmethod
    def of(cls, seed: str) -> LoginSecrets:
        def derive(purpose: str) -> str:
            mac = hmac.new(seed.encode(), purpose.encode(), hashlib.sha256).digest()
            return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

        return cls(derive("state"), derive("code_verifier"), derive("nonce"))


class ConsoleSignIn:
    def __init__(self, ctx: ConsoleContext) -> None:
        self.ctx = ctx

    @property
    def issuer(self) -> str:
        return self.ctx.services.settings.resolved_issuer

    def _login_cookie(self, request: Request) -> str:
        return cookie_name(LOGIN_COOKIE, self.ctx.secure(request))

    async def start(self, request: Request, *, prompt: str | None = None) -> Response:
        """To the issuer's /authorize, remembering the sign-in in a cookie."""
        client = self.ctx.client
        redirect_uri = self.ctx.origin(request) + "/console/callback"
        if client is None or not matches_registered(redirect_uri, client.redirect_uris):
            return self.ctx.pages.message(
                "Open the console at the admin address",
                "The console signs in only at the addresses its settings give it "
                "(AUTHSVC_ADMIN_BIND, a loopback address, or the issuer's host on the admin port).",
                400,
            )
        seed = new_handle()
        secrets_ = LoginSecrets.of(seed)
        query = {
            "response_type": "code",
            "client_id": CONSOLE_CLIENT_ID,
            "redirect_uri": redirect_uri,
            "scope": " ".join(sorted(CONSOLE_SCOPES)),
            "state": secrets_.state,
            "nonce": secrets_.nonce,
            "code_challenge": s256(secrets_.verifier),
            "code_challenge_method": "S256",
        }
        if prompt is not None:
            query["prompt"] = prompt
        response = see_other(f"{self.issuer}/authorize?{urlencode(query)}")
        response.set_cookie(
            self._login_cookie(request),
            seed,
            max_age=LOGIN_TTL,
            path="/",
            secure=self.ctx.secure(request),
            httponly=True,
            samesite="lax",
        )
        return response

    async def callback(self, request: Request) -> Response:
        pairs = query_pairs(request.url.query)
        values = dict(pairs)
        seed = request.cookies.get(self._login_cookie(request))
        expected = LoginSecrets.of(seed) if seed else None
        if (
            expected is None
            or len(values) != len(pairs)
            or not hmac.compare_digest(expected.state.encode(), values.get("state", "").encode())
            or values.get("iss") != self.issuer
        ):
            return self._again("This sign-in does not belong to this browser, or it expired.", 400)
        if "error" in values:
            if values["error"] in _NOT_ADMIN:
                return self._not_admin()
            return self._again("The sign-in did not finish.", 400)
        token = await self._redeem(request, values.get("code", ""), expected)
        if token is None:
            return self._again("The sign-in could not be completed.", 400)
        if ADMIN_SCOPE not in str(token.get("scope", "")).split():
            await self._revoke(str(token["access_token"]))
            return self._not_admin()
        session = await self._session(request, token)
        handle = await self.ctx.sessions.add(session, self.ctx.now())
        response = self._onwards(request)
        response.set_cookie(
            self.ctx.session_cookie(request),
            handle,
            max_age=max(1, int(session.expires_at - self.ctx.now())),
            path="/",
            secure=self.ctx.secure(request),
            httponly=True,
            samesite="strict",
        )
        response.delete_cookie(
            self._login_cookie(request), path="/", secure=self.ctx.secure(request), httponly=True
        )
        return response

    async def _redeem(self, request: Request, code: str, expected: LoginSecrets) -> dict[str, Any] | None:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.ctx.origin(request) + "/console/callback",
            "code_verifier": expected.verifier,
            "client_id": CONSOLE_CLIENT_ID,
        }
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(self.ctx.app), base_url=self.issuer
        ) as http:
            answer = await http.post(f"{self.issuer}/token", data=form)
        if answer.status_code != 200:
            return None
        token: dict[str, Any] = answer.json()
        peeked = peek_claims(token.get("id_token"))
        if peeked is None or peeked[1].get("nonce") != expected.nonce:
            return None
        return token

    async def _session(self, request: Request, token: dict[str, Any]) -> ConsoleSession:
        access_token = str(token["access_token"])
        claims = peek_claims(access_token)
        sub = str(claims[1].get("sub")) if claims else ""
        username = sub
        try:
            users = await self.ctx.api(request, access_token, "GET", "/admin/users")
            username = next((u["username"] for u in users["users"] if u["sub"] == sub), sub)
        except (ApiRefused, SignInAgain):
            pass
        lifetime = int(token.get("expires_in", 0)) or 300
        return ConsoleSession(
            access_token=access_token,
            id_token=token.get("id_token"),
            sub=sub,
            username=username,
            expires_at=self.ctx.now() + lifetime,
        )

    def _onwards(self, request: Request) -> Response:
        """To the console. From another site's redirect a SameSite=Strict cookie is not sent
        on the next hop, so then a page of this site takes the browser on."""
        issuer = urlsplit(self.issuer)
        if issuer.scheme == request.url.scheme and issuer.hostname == request.url.hostname:
            return see_other("/console")
        return self.ctx.pages.render("onwards.html", 200, session=None)

    async def _revoke(self, token: str) -> None:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(self.ctx.app), base_url=self.issuer
        ) as http:
            await http.post(f"{self.issuer}/revoke", data={"token": token, "client_id": CONSOLE_CLIENT_ID})

    def _again(self, text: str, status: int) -> Response:
        return self.ctx.pages.message("Sign-in failed", text, status, link=("Start again", "/console"))

    def _not_admin(self) -> Response:
        return self.ctx.pages.message(
            "Not an administrator",
            "This account may not administer authsvc: the console needs the authsvc:admin scope.",
            403,
            link=("Sign in as someone else", "/console/login"),
        )

    async def logout(self, request: Request, session: ConsoleSession) -> Response:
        """End the console session, its token and the browser's sign-in at the issuer."""
        await self.ctx.sessions.end(request.cookies.get(self.ctx.session_cookie(request)), self.ctx.now())
        await self._revoke(session.access_token)
        signed_out = self.ctx.origin(request) + "/console/signed-out"
        if session.id_token:
            query = urlencode({"id_token_hint": session.id_token, "post_logout_redirect_uri": signed_out})
            response = see_other(f"{self.issuer}/logout?{query}")
        else:
            response = see_other("/console/signed-out")
        response.delete_cookie(
            self.ctx.session_cookie(request), path="/", secure=self.ctx.secure(request), httponly=True
        )
        return response

    def signed_out(self) -> Response:
        return self.ctx.pages.message(
            "Signed out", "You have signed out of the console.", 200, link=("Sign in again", "/console")
        )
