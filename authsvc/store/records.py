"""Plain records the stores return: never SQL rows, never wire models."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Client", "IssuedRefreshToken", "RefreshTokenRow", "SessionRecord", "User"]


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    password_hash: str
    disabled: bool
    scopes: frozenset[str]
    email: str | None
    full_name: str | None
    # Bumped by every password change and disable; a login's session is written only
    # while the version it read is current (CONTRACT.md, Trust rules).
    credentials_version: int = 0


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    user_id: str
    client_id: str
    scope: str
    created_at: float
    expires_at: float
    revoked_at: float | None
    revoked_reason: str | None


@dataclass(frozen=True, slots=True)
class IssuedRefreshToken:
    """A refresh token just minted, and the token response that carries it (stored for grace)."""

    jti: str
    kid: str
    issued_at: float
    expires_at: float
    body: str


@dataclass(frozen=True, slots=True)
class RefreshTokenRow:
    jti: str
    session_id: str
    client_id: str
    kid: str
    issued_at: float
    expires_at: float
    spent_at: float | None
    successor_jti: str | None
    grace_body: str | None
    grace_until: float | None


@dataclass(frozen=True, slots=True)
class Client:
    """An OAuth client. ``scopes`` None: any scope its users hold (the default client)."""

    id: str
    public: bool
    grant_types: frozenset[str]
    scopes: frozenset[str] | None
    audiences: tuple[str, ...]
    access_token_ttl: int | None = None
    secret_hash: str | None = None
    jwks: str | None = None
    # False only for the built-in default client, which has no row to re-check.
    registered: bool = True
