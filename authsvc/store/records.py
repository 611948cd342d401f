"""Plain records the stores return: never SQL rows, never wire models."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AuthorizationCode",
    "BrowserSession",
    "Client",
    "ClientChanges",
    "Consent",
    "IssuedRefreshToken",
    "PendingRequest",
    "RefreshTokenRow",
    "SessionRecord",
    "SpendRequest",
    "SpentToken",
    "User",
]


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
    # The browser session whose sign-in started the family (browser sign-in): a
    # logout there ends it too.
    browser_session_id: str | None = None


@dataclass(frozen=True, slots=True)
class IssuedRefreshToken:
    """A refresh token just minted, and the token response that carries it (stored for grace)."""

    jti: str
    kid: str
    issued_at: float
    expires_at: float
    body: str
    # False: the response carries no refresh token (a client without the refresh_token
    # grant signed in through the browser); the session exists for ``sid`` alone.
    stored: bool = True
    # SHA-256 (hex) of the refresh token's exact bytes: the row authenticates the token
    # a refresh presents, so the refresh need not check our own signature again.
    digest: str | None = None


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
    digest: str | None = None  # None: a row written before revision 0007 (the signature decides)


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
    # Browser sign-in (CONTRACT.md): where codes and logouts may go, who may call from a
    # browser, whether consent is skipped and whether PAR is required.
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    web_origins: tuple[str, ...] = ()
    first_party: bool = False
    require_par: bool = False
    require_dpop: bool = False  # token requests must carry a DPoP proof (RFC 9449)
    # A rotated secret's predecessor works until ``previous_secret_until`` (the overlap).
    previous_secret_hash: str | None = None
    previous_secret_until: float | None = None
    jwks_uri: str | None = None  # private_key_jwt keys fetched from the client (cached)


@dataclass(frozen=True, slots=True)
class ClientChanges:
    """An update of a client: each field set is written, each left None is kept.

    Applied as one UPDATE statement, so two concurrent updates of different
    fields both land (no read-modify-write, no lost update)."""

    grant_types: frozenset[str] | None = None
    scopes: frozenset[str] | None = None
    audiences: tuple[str, ...] | None = None
    access_token_ttl: int | None = None
    jwks: str | None = None  # "": none (a client has registered keys or a URI, not both)
    jwks_uri: str | None = None  # "": none
    redirect_uris: tuple[str, ...] | None = None
    post_logout_redirect_uris: tuple[str, ...] | None = None
    web_origins: tuple[str, ...] | None = None
    first_party: bool | None = None
    require_par: bool | None = None
    require_dpop: bool | None = None


@dataclass(frozen=True, slots=True)
class SpendRequest:
    """The compare-and-set a refresh's write begins with, known before the write runs: a store
    may run it ahead, together with the spends of other writes (``store.sql.spend_ahead``)."""

    jti: str
    client_id: str
    now: float
    successor_jti: str
    digest: str


@dataclass(frozen=True, slots=True)
class SpentToken:
    """A refresh token the compare-and-set just spent, and the session it belongs to.

    ``session``: the session and whether its user is disabled, read with the
    spend (one round trip on PostgreSQL); None when the session or its user is gone.
    """

    session_id: str
    digest: str | None  # the row's digest of the bytes issued (None: a row from before digests)
    session: tuple[SessionRecord, bool] | None


@dataclass(frozen=True, slots=True)
class BrowserSession:
    """A signed-in browser (SSO): the cookie holds a secret whose SHA-256 is ``id``."""

    id: str
    user_id: str
    auth_time: float
    expires_at: float
    credentials_version: int
    revoked_at: float | None = None


@dataclass(frozen=True, slots=True)
class Consent:
    user_id: str
    client_id: str
    scopes: frozenset[str]
    granted_at: float


@dataclass(frozen=True, slots=True)
class PendingRequest:
    """A validated authorization request waiting for the browser (an interaction) or
    pushed by a client (PAR): kept server-side under the SHA-256 of its handle."""

    id: str
    client_id: str
    parameters: str  # JSON of the request's parameters
    expires_at: float
    kind: str  # "interaction" | "par"


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    """An issued code, under the SHA-256 of its value, bound to what the request said."""

    id: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    scope: str
    user_id: str
    browser_session_id: str
    auth_time: float
    credentials_version: int
    expires_at: float
    used_at: float | None = None
    session_id: str | None = None  # the family its redemption opened
    dpop_jkt: str | None = None  # the DPoP key its redemption must prove (RFC 9449 §10)
