"""Login sessions as refresh-token families: the service the grants use (RFC 9700 §4.14).

The decisions themselves (open, rotate, replay, reuse) are
``authsvc.tokens.family_decisions``, inside one store transaction. ``Families``
is the service around them: it checks the presented token (everything but our
own signature, which the row's digest of the bytes issued stands in for),
takes the signing key on the event loop, runs the decision, and reports it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from authsvc.clock import Clock
from authsvc.errors import InvalidGrant
from authsvc.events import Events, RefreshReplayed, RefreshReuseDetected, RefreshRotated, SessionStarted
from authsvc.keys.ring import KeyRing
from authsvc.scopes import granted_scopes, scope_str
from authsvc.store.protocols import Claim, SessionStore
from authsvc.store.records import Client, IssuedRefreshToken, SessionRecord, User
from authsvc.tokens.family_decisions import (
    Outcome,
    Refresh,
    Rotation,
    open_session,
    replay_under_distrusted_key,
    rotate,
)
from authsvc.tokens.id_token import IdTokenRequest
from authsvc.tokens.issuer import REFRESH_TYP, TokenIssuer, new_jti, token_digest
from authsvc.tokens.validation import TokenRejected, check_token, peek_claims

__all__ = ["BrowserSignIn", "Families", "TokenResponse"]

_REFRESH_TYPS = frozenset({REFRESH_TYP})


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """A token endpoint success body, serialised once (and stored as-is for grace)."""

    body: bytes
    session_id: str | None = None  # the family a sign-in opened


@dataclass(frozen=True, slots=True)
class BrowserSignIn:
    """What a code redemption brings from the browser sign-in behind it."""

    user_id: str
    browser_session_id: str
    credentials_version: int  # as the sign-in read it
    id_token: IdTokenRequest
    claim: Claim  # the code's own checks and record, in the family's transaction


class Families:
    """Starts and rotates families for the grants; every decision above, nothing else."""

    def __init__(
        self,
        store: SessionStore,
        issuer: TokenIssuer,
        keys: KeyRing,
        clock: Clock,
        events: Events,
        *,
        grace: int,
        session_ttl: int,
        skew: int = 0,
    ) -> None:
        self.store = store
        self.issuer = issuer
        self.keys = keys
        self.clock = clock
        self.events = events
        self.grace = grace
        self.session_ttl = session_ttl
        self.skew = skew  # leeway on iat/nbf: another instance's clock may be ahead

    async def start(
        self, user: User, client: Client, scopes: frozenset[str], *, jkt: str | None = None
    ) -> TokenResponse:
        """A login: open a family and return its first tokens.

        ``jkt``: the request's DPoP key; the access token is bound to it, and a
        public client's refresh tokens too (RFC 9449 §5).
        """
        first = await self._open(user.id, user.credentials_version, client, scopes, jkt=jkt)
        if first is None:
            # A password change, disable or client removal won the race with this login.
            raise InvalidGrant("The username or password is incorrect.", detail="credentials changed")
        return first

    async def start_browser(
        self, sign_in: BrowserSignIn, client: Client, scopes: frozenset[str], *, jkt: str | None = None
    ) -> TokenResponse:
        """A code redemption: a family for a sign-in that happened earlier in a browser session.

        It gets an ID token when ``openid`` was granted and a refresh token only
        when the client has the grant; the user must still be enabled with the
        credentials the sign-in saw, and ``sign_in.claim`` runs in the same
        transaction (what it raises comes through, and nothing is written).
        """
        first = await self._open(
            sign_in.user_id, sign_in.credentials_version, client, scopes, jkt=jkt, browser=sign_in
        )
        if first is None:
            raise InvalidGrant(detail="the sign-in behind the code ended")
        return first

    async def _open(
        self,
        user_id: str,
        credentials_version: int,
        client: Client,
        scopes: frozenset[str],
        *,
        jkt: str | None,
        browser: BrowserSignIn | None = None,
    ) -> TokenResponse | None:
        now = self.clock.now()
        session = SessionRecord(
            id="s_" + secrets.token_urlsafe(16),
            user_id=user_id,
            client_id=client.id,
            scope=scope_str(scopes),
            created_at=now,
            expires_at=now + self.session_ttl,
            revoked_at=None,
            revoked_reason=None,
            browser_session_id=browser.browser_session_id if browser else None,
        )
        key = self.issuer.signing_key()
        jti = new_jti()
        refresh = browser is None or "refresh_token" in client.grant_types
        id_token = browser.id_token if browser is not None and "openid" in scopes else None
        first = await open_session(
            self.store,
            session,
            lambda s: self.issuer.session_tokens(
                key=key,
                session=s,
                client=client,
                scopes=scopes,
                now=now,
                jti=jti,
                refresh=refresh,
                id_token=id_token,
                jkt=jkt,
                refresh_jkt=jkt if client.public else None,
            ),
            credentials_version=credentials_version,
            registered_client=client.registered,
            claim=browser.claim if browser else None,
        )
        if first is None:
            return None
        self.events.publish(SessionStarted(user_id=user_id, client_id=client.id, sid=session.id))
        return TokenResponse(first.body.encode(), session_id=session.id)

    async def rotate(
        self, token: str, client: Client, requested: frozenset[str] | None, *, jkt: str | None = None
    ) -> TokenResponse:
        """A refresh: spend ``token``, return its successor (or the grace replay).

        A refresh token bound to a DPoP key (``cnf.jkt``) is refused unless the
        request proved that key (``jkt``); the successor keeps the binding.
        """
        now = self.clock.now()
        # Everything but our signature: the row keeps the digest of the bytes we issued, and
        # the spend below matches it (so these claims only refuse until then). The kid still
        # decides: a token of a revoked or retired key is never spent.
        try:
            claims, _kid = self._check(token, now, signature=False)
        except TokenRejected as exc:
            if exc.reason == "unknown or retired kid":
                return await self._distrusted(token, client, now)
            raise InvalidGrant(detail=exc.reason) from None

        def signed() -> bool:  # a row from before digests: the signature decides, as it did
            try:
                self._check(token, now, signature=True)
            except TokenRejected:
                return False
            return True

        if float(claims["exp"]) <= now:  # the sliding lifetime ends exactly: no leeway on exp
            raise InvalidGrant(detail="expired")
        if claims.get("client_id") != client.id or not isinstance(claims.get("sid"), str):
            raise InvalidGrant(detail="refresh token of another client")
        cnf = claims.get("cnf")
        bound = cnf.get("jkt") if isinstance(cnf, dict) else None
        if bound is not None and bound != jkt:
            raise InvalidGrant(detail="refresh token bound to another DPoP key")
        # A refresh may narrow the session's scope, never widen it (RFC 6749 §6).
        scopes = granted_scopes(frozenset(str(claims.get("scope", "")).split()), requested)
        key = self.issuer.signing_key()
        successor_jti = new_jti()
        refresh = Refresh(
            jti=claims["jti"],
            client_id=client.id,
            now=now,
            grace=self.grace,
            successor_jti=successor_jti,
            successor=lambda session: self.issuer.session_tokens(
                key=key,
                session=session,
                client=client,
                scopes=scopes,
                now=now,
                jti=successor_jti,
                jkt=jkt,
                refresh_jkt=jkt if client.public else None,
            ),
            digest=token_digest(token),
            signed=signed,
        )
        return self._answer(await rotate(self.store, refresh), claims, client)

    async def _distrusted(self, token: str, client: Client, now: float) -> TokenResponse:
        """A token of a key we no longer trust: refused, but a replay of one that was spent is
        still reuse (its row's digest vouches for the bytes) and revokes the family."""
        peeked = peek_claims(token)
        claims = peeked[1] if peeked is not None else {}
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise InvalidGrant(detail="unknown or retired kid")
        # Most such tokens were never spent (every live token of a revoked key, presented
        # once more): a read refuses them without taking the write lock. Only a spent row
        # goes on to the transaction, which reads it again and decides.
        row = await self.store.token(jti)
        if row is None or row.digest is None or row.spent_at is None:
            raise InvalidGrant(detail="unknown or retired kid")

        def never(_session: SessionRecord) -> IssuedRefreshToken:
            raise AssertionError("a token of a distrusted key is never spent")

        refresh = Refresh(
            jti=jti,
            client_id=client.id,
            now=now,
            grace=self.grace,
            successor_jti="",
            successor=never,
            digest=token_digest(token),
            signed=lambda: False,
        )
        result = await self.store.write(lambda tx: replay_under_distrusted_key(tx, refresh))
        return self._answer(result, claims, client)

    def _answer(self, result: Rotation, claims: dict[str, Any], client: Client) -> TokenResponse:
        """The token response of a rotation, or InvalidGrant; the audit event either way."""
        user_id = claims.get("sub") if isinstance(claims.get("sub"), str) else None
        sid = result.session_id
        if result.outcome is Outcome.ROTATED or result.outcome is Outcome.REPLAYED:
            assert result.body is not None
            reported = RefreshRotated if result.outcome is Outcome.ROTATED else RefreshReplayed
            self.events.publish(reported(user_id=user_id, client_id=client.id, sid=sid))
            return TokenResponse(result.body.encode())
        if result.outcome is Outcome.REUSED:
            self.events.publish(RefreshReuseDetected(user_id=user_id, client_id=client.id, sid=sid))
        raise InvalidGrant(detail=result.reason)

    def _check(self, token: str, now: float, *, signature: bool) -> tuple[dict[str, Any], str]:
        return check_token(
            token,
            typs=_REFRESH_TYPS,
            key_for=self.keys.refresh_token_key,
            issuer=self.issuer.issuer,
            now=now,
            skew=self.skew,
            signature=signature,
        )
