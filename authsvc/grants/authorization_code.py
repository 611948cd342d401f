"""The authorization code grant (RFC 6749 §4.1.3) with PKCE (RFC 7636, S256 only).

A code is used once: the compare-and-set in ``SqlBrowserStore.use_code``
lets exactly one redemption through, and commits on its own, so a redemption
that fails a check below still spends the code; a second one is refused and
revokes the family the first opened (RFC 6749 §4.1.2). The code is bound to
its client, redirect URI, PKCE challenge, nonce, scopes, browser session and
the credentials the sign-in saw: a password change, a disable or a logout
between the sign-in and the redemption leaves the code worthless. Those last
are checked in the one transaction that opens the family and notes it on the
code (``SqlBrowserStore.code_claim``), so a redemption is two transactions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any, ClassVar

from authsvc.browser.cookies import digest
from authsvc.clock import Clock
from authsvc.errors import InvalidGrant, InvalidRequest
from authsvc.events import CodeRedeemed, CodeReused, Events
from authsvc.grants.base import GrantRequest
from authsvc.store.records import AuthorizationCode, Client
from authsvc.store.sql.browser import CodeRedeemedMeanwhile, SignInEnded, SqlBrowserStore
from authsvc.tokens.families import BrowserSignIn, Families, TokenResponse
from authsvc.tokens.id_token import IdTokenRequest

__all__ = ["AuthorizationCodeGrant", "s256"]

_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 §4.1


def s256(verifier: str) -> str:
    """The S256 code challenge of a verifier."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


class AuthorizationCodeGrant:
    grant_type: ClassVar[str] = "authorization_code"
    parameters: ClassVar[dict[str, dict[str, Any]]] = {
        "code": {"type": "string"},
        "redirect_uri": {"type": "string"},
        "code_verifier": {"type": "string"},
    }
    default_client: ClassVar[bool] = False

    def __init__(self, store: SqlBrowserStore, families: Families, clock: Clock, events: Events) -> None:
        self.store = store
        self.families = families
        self.clock = clock
        self.events = events

    async def handle(self, request: GrantRequest) -> TokenResponse:
        form, client = request.form, request.client
        for name in ("code", "redirect_uri", "code_verifier"):
            if name not in form:
                raise InvalidRequest(f"The {name} parameter is required.")
        now = self.clock.now()
        code, first = await self.store.use_code(digest(form["code"]), now)
        if code is None:
            raise InvalidGrant(detail="unknown code")
        if not first:
            self.events.publish(CodeReused(user_id=code.user_id, client_id=code.client_id))
            raise InvalidGrant(detail="code used before")
        self._check(code, client, form["redirect_uri"], form["code_verifier"], now)
        if code.dpop_jkt is not None and code.dpop_jkt != request.dpop_jkt:
            raise InvalidGrant(detail="code bound to another DPoP key")
        sign_in = BrowserSignIn(
            user_id=code.user_id,
            browser_session_id=code.browser_session_id,
            credentials_version=code.credentials_version,
            id_token=IdTokenRequest(auth_time=code.auth_time, nonce=code.nonce),
            claim=self.store.code_claim(code.id, code.browser_session_id),
        )
        try:
            response = await self.families.start_browser(
                sign_in, client, frozenset(code.scope.split()), jkt=request.dpop_jkt
            )
        except SignInEnded:
            raise InvalidGrant(detail="the sign-in behind the code ended") from None
        except CodeRedeemedMeanwhile:
            self.events.publish(CodeReused(user_id=code.user_id, client_id=code.client_id))
            raise InvalidGrant(detail="code used twice at once") from None
        assert response.session_id is not None
        self.events.publish(CodeRedeemed(user_id=code.user_id, client_id=client.id, sid=response.session_id))
        return response

    @staticmethod
    def _check(code: AuthorizationCode, client: Client, redirect_uri: str, verifier: str, now: float) -> None:
        if code.client_id != client.id:
            raise InvalidGrant(detail="code of another client")
        if code.expires_at <= now:
            raise InvalidGrant(detail="code expired")
        if redirect_uri != code.redirect_uri:
            raise InvalidGrant(detail="redirect_uri differs from the authorization request")
        if _VERIFIER.fullmatch(verifier) is None or not hmac.compare_digest(
            s256(verifier), code.code_challenge
        ):
            raise InvalidGrant(detail="PKCE verifier does not match")
