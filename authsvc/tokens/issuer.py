"""Every token this service issues: claims built here, signed compact JWS out.

Access tokens are RFC 9068 (``typ: at+jwt``); refresh tokens are ours
(``typ: rt+jwt``, no ``aud``, never accepted where an access token is
expected). Both carry the signing key's kid. The token response body (RFC 6749
§5.1) is built here too, once, so that a grace replay returns exactly the
bytes of the first answer.

The signing key is looked up by the caller on the event loop (the key manager
is not shared with threads) and passed in; building and signing may then run
on a store's worker thread.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from joserfc import jws

from authsvc.jose import registry_for
from authsvc.keys.ring import KeyRing, LoadedKey
from authsvc.randomness import token_urlsafe
from authsvc.scopes import scope_str
from authsvc.store.records import Client, IssuedRefreshToken, SessionRecord
from authsvc.tokens.id_token import ID_TOKEN_TYP, IdTokenRequest, id_token_claims

__all__ = ["ACCESS_TYP", "REFRESH_TYP", "TokenIssuer", "new_jti", "sign", "token_body", "token_digest"]

ACCESS_TYP = "at+jwt"  # RFC 9068
REFRESH_TYP = "rt+jwt"  # ours: never accepted where an access token is expected


def new_jti() -> str:
    """A token id: 144 random bits (read ahead from the OS, ``authsvc.randomness``)."""
    return token_urlsafe(18)


def token_digest(token: str) -> str:
    """SHA-256 (hex) of a token's exact bytes, as a refresh token's row keeps it."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def sign(key: LoadedKey, typ: str, claims: dict[str, Any]) -> str:
    """A compact JWS of ``claims`` signed with ``key``."""
    header = {"alg": key.alg, "kid": key.kid, "typ": typ}
    payload = orjson.dumps(claims)  # compact UTF-8, as json.dumps(ensure_ascii=False), cheaper
    return jws.serialize_compact(header, payload, key.key, registry=registry_for(key.alg))


def token_body(
    access_token: str,
    expires_in: int,
    scopes: frozenset[str],
    refresh_token: str | None,
    id_token: str | None = None,
    *,
    dpop: bool = False,
) -> str:
    """The RFC 6749 §5.1 success body (with OpenID Connect's ``id_token`` when one is issued);
    ``token_type`` is ``DPoP`` for a DPoP-bound access token (RFC 9449 §5)."""
    body: dict[str, object] = {
        "access_token": access_token,
        "token_type": "DPoP" if dpop else "Bearer",
        "expires_in": expires_in,
        "scope": scope_str(scopes),
    }
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    if id_token is not None:
        body["id_token"] = id_token
    return orjson.dumps(body).decode()  # the JWTs are most of it: json.dumps escapes them char by char


@dataclass(frozen=True, slots=True)
class TokenIssuer:
    """Claims and lifetimes of our tokens (CONTRACT.md, Tokens)."""

    issuer: str
    keys: KeyRing
    access_ttl: int
    refresh_ttl: int
    default_audience: str

    def signing_key(self) -> LoadedKey:
        """The key the timetable names now (on the event loop)."""
        return self.keys.signing_key()

    def access_token(
        self,
        *,
        key: LoadedKey,
        sub: str,
        client: Client,
        scopes: frozenset[str],
        now: float,
        sid: str | None = None,
        cap: float | None = None,
        jkt: str | None = None,
    ) -> tuple[str, int]:
        """(token, expires_in); ``cap`` bounds ``exp`` (a session's absolute end); ``jkt``: the
        DPoP key the token is bound to (``cnf``, RFC 9449 §6)."""
        ttl = min(client.access_token_ttl or self.access_ttl, self.access_ttl)
        audiences = client.audiences or (self.default_audience,)
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
        if jkt is not None:
            claims["cnf"] = {"jkt": jkt}
        return sign(key, ACCESS_TYP, claims), max(0, exp - int(now))

    def session_tokens(
        self,
        *,
        key: LoadedKey,
        session: SessionRecord,
        client: Client,
        scopes: frozenset[str],
        now: float,
        jti: str,
        refresh: bool = True,
        id_token: IdTokenRequest | None = None,
        jkt: str | None = None,
        refresh_jkt: str | None = None,
    ) -> IssuedRefreshToken:
        """A session's access and refresh tokens, and the response carrying both.

        The refresh token keeps the session's scope; the access token gets
        ``scopes`` (a refresh may ask for a subset). ``refresh`` False: no refresh
        token (the response says so with ``stored``); ``id_token``: an OpenID
        Connect sign-in, whose ID token goes with the access token. Pure
        computation and signing: safe on a worker thread. ``jkt`` binds the access
        token to a DPoP key, ``refresh_jkt`` the refresh token (a public client's).
        """
        access, expires_in = self.access_token(
            key=key,
            sub=session.user_id,
            client=client,
            scopes=scopes,
            now=now,
            sid=session.id,
            cap=session.expires_at,
            jkt=jkt,
        )
        iat = int(now)
        signed_id_token = None
        if id_token is not None:
            claims = id_token_claims(
                issuer=self.issuer,
                sub=session.user_id,
                client_id=client.id,
                sid=session.id,
                iat=iat,
                exp=iat + expires_in,
                request=id_token,
                access_token=access,
                alg=key.alg,
            )
            signed_id_token = sign(key, ID_TOKEN_TYP, claims)
        exp = min(iat + self.refresh_ttl, int(session.expires_at))
        if not refresh:
            body = token_body(access, expires_in, scopes, None, signed_id_token, dpop=jkt is not None)
            return IssuedRefreshToken(
                jti=jti, kid=key.kid, issued_at=now, expires_at=float(exp), body=body, stored=False
            )
        refresh_claims: dict[str, object] = {
            "iss": self.issuer,
            "sub": session.user_id,
            "client_id": client.id,
            "sid": session.id,
            "jti": jti,
            "iat": iat,
            "exp": exp,
            "scope": session.scope,
        }
        if refresh_jkt is not None:
            refresh_claims["cnf"] = {"jkt": refresh_jkt}
        refresh_token = sign(key, REFRESH_TYP, refresh_claims)
        body = token_body(access, expires_in, scopes, refresh_token, signed_id_token, dpop=jkt is not None)
        return IssuedRefreshToken(
            jti=jti,
            kid=key.kid,
            issued_at=now,
            expires_at=float(exp),
            body=body,
            digest=token_digest(refresh_token),
        )
