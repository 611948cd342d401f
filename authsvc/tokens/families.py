"""Login sessions as refresh-token families: RFC 9700 §4.14, in one place.

``open_family`` and ``rotate_family`` are the decisions, written against the
statements of a ``SessionTransaction`` and run inside one store transaction
they are handed (on the store's worker thread):

* a login writes its session, then re-reads the user and client under a lock:
  a password change, disable or client removal that won the race leaves no
  session behind (CONTRACT.md, Trust rules);
* a refresh spends the presented token with a compare-and-set; the winner
  records its successor (and, with a grace window, the response it returns);
* a spent token that comes back is a replay: inside the grace, while its
  successor is unspent, it gets the stored response again; otherwise it is
  reuse, and the whole family is revoked.

``Families`` is the service around them: it checks the presented token's JWS,
looks the signing key up on the event loop, runs the decision, and reports it.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from authsvc.clock import Clock
from authsvc.errors import InvalidGrant
from authsvc.events import Events, RefreshReplayed, RefreshReuseDetected, RefreshRotated, SessionStarted
from authsvc.keys.ring import KeyRing
from authsvc.scopes import granted_scopes, scope_str
from authsvc.store.protocols import SessionTransaction, SessionWriter
from authsvc.store.records import Client, IssuedRefreshToken, SessionRecord, User
from authsvc.tokens.id_token import IdTokenRequest
from authsvc.tokens.issuer import REFRESH_TYP, TokenIssuer, new_jti, token_digest
from authsvc.tokens.validation import TokenRejected, check_token

__all__ = [
    "BrowserSignIn",
    "Families",
    "Outcome",
    "Rotation",
    "TokenResponse",
    "open_family",
    "rotate_family",
]

_REFRESH_TYPS = frozenset({REFRESH_TYP})


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """A token endpoint success body, serialised once (and stored as-is for grace)."""

    body: bytes
    session_id: str | None = None  # the family a sign-in opened


class Outcome(StrEnum):
    ROTATED = "rotated"  # the token was spent now; body is the new response
    REPLAYED = "replayed"  # a retry inside the grace window; body is the first response
    REUSED = "reused"  # a spent token came back: the family is now revoked
    INVALID = "invalid"  # unknown, expired, revoked, another client's, or its session ended


@dataclass(frozen=True, slots=True)
class Rotation:
    outcome: Outcome
    body: str | None = None
    session_id: str | None = None
    reason: str = ""


class _Ended(Exception):
    """The session ended under the spend: raised to roll the spend back."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id


class _Forged(Exception):
    """A row without a digest was spent by a token whose signature is not ours: roll back."""


class _Stale(Exception):
    """The user or client changed after the login read them: roll the session back."""


# --- the decisions, inside a transaction --------------------------------------------
def open_family(
    tx: SessionTransaction,
    session: SessionRecord,
    first: Callable[[SessionRecord], IssuedRefreshToken],
    *,
    credentials_version: int,
    registered_client: bool,
) -> IssuedRefreshToken:
    """Write a new session and its first token, unless the login's reads went stale.

    The session row comes first, then the re-reads under a share lock: a
    credential change or removal either committed before (the versions differ:
    this raises and nothing is written) or waits for this transaction and then
    revokes the session it wrote.
    """
    tx.insert_session(session)
    user = tx.user_credentials(session.user_id)
    if user is None or user[1] or user[0] != credentials_version:
        raise _Stale
    if registered_client and not tx.client_live(session.client_id):
        raise _Stale
    token = first(session)
    if token.stored:
        tx.insert_token(token, session)
    return token


def rotate_family(
    tx: SessionTransaction,
    *,
    jti: str,
    client_id: str,
    now: float,
    grace: int,
    successor_jti: str,
    successor: Callable[[SessionRecord], IssuedRefreshToken],
    digest: str,
    signed: Callable[[], bool],
) -> Rotation:
    """Spend ``jti`` and record its successor, or decide what a replay of it means.

    The presented token is authentic when its ``digest`` is the one its row
    keeps; a row from before digests were kept asks ``signed`` (our signature
    check) instead. An inauthentic token never spends nor revokes anything.
    """
    spent = tx.spend(jti, client_id, now, successor_jti, digest)
    if spent is None:
        return _replayed(tx, jti, client_id, now, digest, signed)
    session_id, stored_digest = spent
    if stored_digest is None and not signed():
        raise _Forged
    found = tx.session_and_user_disabled(session_id)
    if found is None:
        raise _Ended(session_id)  # its user is gone
    if _ended(found, now):
        raise _Ended(session_id)
    session = found[0]
    token = successor(session)
    if token.jti != successor_jti:
        raise ValueError("the successor must carry the jti the spend recorded")
    tx.insert_token(token, session)
    if grace > 0:
        # Older generations can never be replayed now (their successors are spent):
        # their stored bodies go at once rather than at the next sweep.
        tx.drop_grace_bodies(session.id, keep=jti)
        tx.keep_grace_body(jti, token.body, now + grace)
    return Rotation(Outcome.ROTATED, body=token.body, session_id=session.id)


def _replayed(
    tx: SessionTransaction, jti: str, client_id: str, now: float, digest: str, signed: Callable[[], bool]
) -> Rotation:
    """A token the compare-and-set did not spend: unknown, forged, expired, or a replay."""
    token = tx.token(jti)
    if token is None:
        return Rotation(Outcome.INVALID, reason="unknown refresh token")
    if token.digest is not None and not hmac.compare_digest(token.digest, digest):
        return Rotation(Outcome.INVALID, reason="not the token issued")  # never reuse: nothing revoked
    if token.digest is None and not signed():
        return Rotation(Outcome.INVALID, reason="bad signature")
    if token.client_id != client_id:
        return Rotation(Outcome.INVALID, session_id=token.session_id, reason="other client")
    if token.spent_at is None:
        return Rotation(Outcome.INVALID, session_id=token.session_id, reason="expired")
    found = tx.session_and_user_disabled(token.session_id)
    if found is None or _ended(found, now):
        return Rotation(Outcome.INVALID, session_id=token.session_id, reason="session ended")
    if (
        token.grace_body is not None
        and token.grace_until is not None
        and now < token.grace_until
        and token.successor_jti is not None
        and tx.is_unspent(token.successor_jti)
    ):
        return Rotation(Outcome.REPLAYED, body=token.grace_body, session_id=token.session_id)
    tx.revoke_session(token.session_id, now, "reuse")
    tx.drop_grace_bodies(token.session_id)
    return Rotation(Outcome.REUSED, session_id=token.session_id, reason="reuse")


def _ended(found: tuple[SessionRecord, bool], now: float) -> bool:
    session, user_disabled = found
    return session.revoked_at is not None or session.expires_at <= now or user_disabled


async def rotate(
    store: SessionWriter,
    *,
    jti: str,
    client_id: str,
    now: float,
    grace: int,
    successor_jti: str,
    successor: Callable[[SessionRecord], IssuedRefreshToken],
    digest: str,
    signed: Callable[[], bool],
) -> Rotation:
    """``rotate_family`` in one transaction of ``store``; a session that ended, or a forged
    token, rolls the spend back."""
    try:
        return await store.write(
            lambda tx: rotate_family(
                tx,
                jti=jti,
                client_id=client_id,
                now=now,
                grace=grace,
                successor_jti=successor_jti,
                successor=successor,
                digest=digest,
                signed=signed,
            )
        )
    except _Ended as ended:
        return Rotation(Outcome.INVALID, session_id=ended.session_id, reason="session ended")
    except _Forged:
        return Rotation(Outcome.INVALID, reason="bad signature")


async def open_session(
    store: SessionWriter,
    session: SessionRecord,
    first: Callable[[SessionRecord], IssuedRefreshToken],
    *,
    credentials_version: int,
    registered_client: bool,
) -> IssuedRefreshToken | None:
    """``open_family`` in one transaction of ``store``; None when the login's reads went stale."""
    try:
        return await store.write(
            lambda tx: open_family(
                tx,
                session,
                first,
                credentials_version=credentials_version,
                registered_client=registered_client,
            )
        )
    except _Stale:
        return None


# --- the service --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BrowserSignIn:
    """What a code redemption brings from the browser sign-in behind it."""

    browser_session_id: str
    credentials_version: int  # as the sign-in read it
    id_token: IdTokenRequest


class Families:
    """Starts and rotates families for the grants; every decision above, nothing else."""

    def __init__(
        self,
        store: SessionWriter,
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
        self,
        user: User,
        client: Client,
        scopes: frozenset[str],
        *,
        browser: BrowserSignIn | None = None,
        jkt: str | None = None,
    ) -> TokenResponse:
        """A login: open a family and return its first tokens.

        ``browser``: a code redemption, whose sign-in happened earlier in a
        browser session; the family is tied to that session, gets an ID token
        when ``openid`` was granted, a refresh token only when the client has
        the grant, and must still match the credentials the sign-in saw.
        ``jkt``: the request's DPoP key; the access token is bound to it, and a
        public client's refresh tokens too (RFC 9449 §5).
        """
        now = self.clock.now()
        session = SessionRecord(
            id="s_" + secrets.token_urlsafe(16),
            user_id=user.id,
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
            credentials_version=browser.credentials_version if browser else user.credentials_version,
            registered_client=client.registered,
        )
        if first is None:
            # A password change, disable or client removal won the race with this login.
            raise InvalidGrant("The username or password is incorrect.", detail="credentials changed")
        self.events.publish(SessionStarted(user_id=user.id, client_id=client.id, sid=session.id))
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
        # decides: a token of a revoked or retired key is refused here.
        try:
            claims, _kid = self._check(token, now, signature=False)
        except TokenRejected as exc:
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
        result = await rotate(
            self.store,
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
