"""Login sessions (refresh-token families) and the token responses they yield.

``start`` opens a family at login; ``rotate`` spends a refresh token and
issues its successor in the same family, or — when a spent token comes back
outside the grace window — revokes the whole family (RFC 9700 §4.14).
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass

from authsvc.clock import Clock
from authsvc.errors import InvalidGrant, InvalidScope
from authsvc.keys.manager import KeyManager, LoadedKey
from authsvc.settings import AuthSettings
from authsvc.store.records import Client, SessionRecord, User
from authsvc.store.sql.sessions import NewRefreshToken, RotateOutcome, SqlSessionStore
from authsvc.tokens.issuer import ACCESS_TYP, REFRESH_TYP, new_jti, sign
from authsvc.tokens.validation import TokenRejected, check_token

__all__ = ["SessionService", "TokenResponse", "parse_scope"]

audit = logging.getLogger("authsvc.audit")

_REFRESH_TYPS = frozenset({REFRESH_TYP})


def parse_scope(value: str | None) -> frozenset[str] | None:
    """Space-separated scope tokens (RFC 6749 §3.3); None when not asked."""
    if value is None:
        return None
    tokens = value.split(" ")
    if any(not t or not all(0x21 <= ord(c) <= 0x7E and c not in '"\\' for c in t) for t in tokens):
        raise InvalidScope("The scope parameter is malformed.")
    return frozenset(tokens)


def scope_str(scopes: frozenset[str]) -> str:
    return " ".join(sorted(scopes))


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """A token endpoint success body, serialised once (and stored as-is for grace)."""

    body: bytes


class SessionService:
    def __init__(
        self, settings: AuthSettings, clock: Clock, keys: KeyManager, store: SqlSessionStore
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.keys = keys
        self.store = store
        self.issuer = settings.resolved_issuer

    # --- building tokens -------------------------------------------------------------
    def access_token(
        self,
        *,
        sub: str,
        client: Client,
        scopes: frozenset[str],
        now: float,
        sid: str | None,
        cap: float | None = None,
        key: LoadedKey | None = None,
    ) -> tuple[str, int]:
        ttl = min(client.access_token_ttl or self.settings.access_token_ttl, self.settings.access_token_ttl)
        audiences = client.audiences or (self.settings.default_audience,)
        iat = int(now)
        exp = iat + ttl if cap is None else min(iat + ttl, int(cap))
        claims: dict[str, object] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": audiences[0] if len(audiences) == 1 else list(audiences),
            "exp": exp,
            "iat": iat,
            "jti": new_jti(),
            "client_id": client.id,
            "scope": scope_str(scopes),
        }
        if sid is not None:
            claims["sid"] = sid
        signing_key = key or self.keys.signing_key()
        return sign(signing_key, ACCESS_TYP, claims), max(0, exp - int(now))

    def _token_body(
        self,
        session: SessionRecord,
        client: Client,
        scopes: frozenset[str],
        now: float,
        key: LoadedKey,
        jti: str | None = None,
    ) -> NewRefreshToken:
        """Both tokens and the response body; runs on the store's worker thread (pure computation)."""
        access, expires_in = self.access_token(
            sub=session.user_id,
            client=client,
            scopes=scopes,
            now=now,
            sid=session.id,
            cap=session.expires_at,
            key=key,  # the refresh token below is signed by the same key, looked up once
        )
        jti = jti or new_jti()
        iat = int(now)
        exp = min(iat + self.settings.refresh_token_ttl, int(session.expires_at))
        refresh = sign(
            key,
            REFRESH_TYP,
            {
                "iss": self.issuer,
                "sub": session.user_id,
                "client_id": client.id,
                "sid": session.id,
                "jti": jti,
                "iat": iat,
                "exp": exp,
                "scope": session.scope,
            },
        )
        body = json.dumps(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": expires_in,
                "scope": scope_str(scopes),
                "refresh_token": refresh,
            },
            separators=(",", ":"),
        )
        return NewRefreshToken(jti=jti, kid=key.kid, issued_at=now, expires_at=float(exp), body=body)

    # --- families --------------------------------------------------------------------
    async def start(self, user: User, client: Client, scopes: frozenset[str]) -> TokenResponse:
        """A login: open a family and return its first tokens."""
        now = self.clock.now()
        session = SessionRecord(
            id="s_" + secrets.token_urlsafe(16),
            user_id=user.id,
            client_id=client.id,
            scope=scope_str(scopes),
            created_at=now,
            expires_at=now + self.settings.refresh_token_max_ttl,
            revoked_at=None,
            revoked_reason=None,
        )
        key = self.keys.signing_key()  # on the loop: the key manager is not shared with threads
        first = await self.store.create(
            session,
            lambda s: self._token_body(s, client, scopes, now, key),
            credentials_version=user.credentials_version,
            registered_client=client.registered,
        )
        if first is None:
            # A password change, disable or client removal won the race with this login.
            raise InvalidGrant("The username or password is incorrect.", detail="credentials changed")
        audit.info(
            "session started",
            extra={"event": "session.started", "user_id": user.id, "client_id": client.id, "sid": session.id},
        )
        return TokenResponse(first.body.encode())

    async def rotate(self, token: str, client: Client, requested: frozenset[str] | None) -> TokenResponse:
        """A refresh: spend ``token``, return its successor (or the grace replay)."""
        now = self.clock.now()
        try:
            claims, _kid = check_token(
                token,
                typs=_REFRESH_TYPS,
                key_for=self.keys.refresh_key,
                issuer=self.issuer,
                now=now,
                skew=0,
            )
        except TokenRejected as exc:
            raise InvalidGrant(detail=exc.reason) from None
        if claims.get("client_id") != client.id or not isinstance(claims.get("sid"), str):
            raise InvalidGrant(detail="refresh token of another client")
        granted = frozenset(str(claims.get("scope", "")).split())
        scopes = granted if requested is None else requested
        if not scopes <= granted:
            raise InvalidScope()
        successor_jti = new_jti()
        key = self.keys.signing_key()  # on the loop: the key manager is not shared with threads
        result = await self.store.rotate(
            claims["jti"],
            client.id,
            now,
            self.settings.refresh_reuse_grace,
            lambda session: self._token_body(session, client, scopes, now, key, successor_jti),
            successor_jti=successor_jti,
        )
        context = {"client_id": client.id, "sid": result.session_id, "user_id": claims.get("sub")}
        if result.outcome is RotateOutcome.ROTATED or result.outcome is RotateOutcome.REPLAYED:
            assert result.body is not None
            audit.info("refresh", extra={"event": f"refresh.{result.outcome.value}", **context})
            return TokenResponse(result.body.encode())
        if result.outcome is RotateOutcome.REUSED:
            audit.warning(
                "refresh token reuse detected; session revoked",
                extra={"event": "refresh.reuse_detected", **context},
            )
        raise InvalidGrant(detail=result.reason)
