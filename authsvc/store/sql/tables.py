"""Table definitions (SQLAlchemy Core). The migrations are the schema's history;
these describe the current head and must match it (a test checks)."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

__all__ = [
    "authorization_codes",
    "browser_sessions",
    "client_assertions",
    "clients",
    "consents",
    "key_manifest",
    "login_counters",
    "metadata",
    "pending_requests",
    "private_keys",
    "refresh_tokens",
    "revoked_access_tokens",
    "server_secrets",
    "sessions",
    "users",
]

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),  # opaque, immutable: the token `sub`
    Column("username", String(150), nullable=False, unique=True),  # PRECIS UsernameCaseMapped
    Column("password_hash", String(512), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("scopes", Text, nullable=False, default=""),
    Column("email", String(320)),
    Column("full_name", String(300)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # Revision 0003. Bumped by a password change and by disabling: a session is written
    # only if the version its login read is still current.
    Column("credentials_version", Integer, nullable=False, server_default="0"),
    # Look-alike skeleton (authsvc.usernames), unique; NULL only for names older than 0003
    # that could not be mapped.
    Column("username_key", String(600)),
    Index("ux_users_username_key", "username_key", unique=True),
)

clients = Table(
    "clients",
    metadata,
    Column("client_id", String(200), primary_key=True),
    Column("client_type", String(20), nullable=False),  # public | confidential
    Column("secret_hash", String(512)),
    Column("grant_types", Text, nullable=False, default=""),
    Column("scopes", Text, nullable=False, default=""),
    Column("audiences", Text, nullable=False, default=""),
    Column("access_token_ttl", Integer),
    Column("jwks", Text),
    Column("created_at", Float, nullable=False),
    # Revision 0003: a removed client stays as a tombstone, so its id is never revived.
    Column("removed_at", Float),
    # Revision 0004 (browser sign-in): space-separated URI lists and two flags.
    Column("redirect_uris", Text, nullable=False, server_default=""),
    Column("post_logout_redirect_uris", Text, nullable=False, server_default=""),
    Column("web_origins", Text, nullable=False, server_default=""),
    Column("first_party", Boolean, nullable=False, server_default=text("false")),
    Column("require_par", Boolean, nullable=False, server_default=text("false")),
    # Revision 0005: token requests must carry a DPoP proof.
    Column("require_dpop", Boolean, nullable=False, server_default=text("false")),
    # Revision 0006: a rotated secret works until previous_secret_until; keys by URI.
    Column("previous_secret_hash", String(512)),
    Column("previous_secret_until", Float),
    Column("jwks_uri", Text),
    Column("updated_at", Float),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # the `sid` claim
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("client_id", String(200), nullable=False),
    Column("scope", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),  # absolute limit of the family
    Column("revoked_at", Float),
    Column("revoked_reason", String(40)),
    # Revision 0004: the browser session whose sign-in started the family (logout ends both).
    Column("browser_session_id", String(64)),
    Index("ix_sessions_user_id", "user_id"),
    Index("ix_sessions_expires_at", "expires_at"),
    Index("ix_sessions_browser_session_id", "browser_session_id"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("client_id", String(200), nullable=False),
    Column("kid", String(128), nullable=False),
    Column("issued_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("spent_at", Float),
    Column("successor_jti", String(64)),
    Column("grace_body", Text),  # the first response, kept only until grace_until
    Column("grace_until", Float),
    # Revision 0007: SHA-256 of the token's bytes, which authenticates a presented token.
    Column("digest", String(64)),
    Index("ix_refresh_tokens_session_id", "session_id"),
    Index("ix_refresh_tokens_expires_at", "expires_at"),
    # Revision 0003: the sweeper finds stored grace bodies past their window at once.
    Index(
        "ix_refresh_tokens_grace_until",
        "grace_until",
        sqlite_where=text("grace_body IS NOT NULL"),
        postgresql_where=text("grace_body IS NOT NULL"),
    ),
)

revoked_access_tokens = Table(
    "revoked_access_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("expires_at", Float, nullable=False),
    Index("ix_revoked_access_tokens_expires_at", "expires_at"),
)

client_assertions = Table(
    "client_assertions",
    metadata,
    Column("client_id", String(200), primary_key=True),
    Column("jti", String(200), primary_key=True),
    Column("expires_at", Float, nullable=False),
    Index("ix_client_assertions_expires_at", "expires_at"),
)


# Revision 0003: failed-login and client-authentication counters shared by every
# process when Redis is not configured (or unreachable). ``key`` is a SHA-256 of
# what is counted, so no username or address is stored here.
login_counters = Table(
    "login_counters",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("expires_at", Float, nullable=False),  # the window's end
    Index("ix_login_counters_expires_at", "expires_at"),
)


# Revision 0004: browser sign-in. Every secret handle (cookie, code, interaction,
# request_uri) is stored as its SHA-256 only.
browser_sessions = Table(
    "browser_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("auth_time", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("credentials_version", Integer, nullable=False),
    Column("revoked_at", Float),
    Index("ix_browser_sessions_user_id", "user_id"),
    Index("ix_browser_sessions_expires_at", "expires_at"),
)

consents = Table(
    "consents",
    metadata,
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("client_id", String(200), primary_key=True),
    Column("scopes", Text, nullable=False),
    Column("granted_at", Float, nullable=False),
)

pending_requests = Table(
    "pending_requests",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(20), nullable=False),  # interaction | par
    Column("client_id", String(200), nullable=False),
    Column("parameters", Text, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_pending_requests_expires_at", "expires_at"),
)

authorization_codes = Table(
    "authorization_codes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("client_id", String(200), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("code_challenge", String(128), nullable=False),
    Column("nonce", Text),
    Column("scope", Text, nullable=False),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("browser_session_id", String(64), nullable=False),
    Column("auth_time", Float, nullable=False),
    Column("credentials_version", Integer, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float),
    Column("session_id", String(64)),
    # Revision 0005: the DPoP key the code is bound to (dpop_jkt, or a proof at /par).
    Column("dpop_jkt", String(64)),
    Index("ix_authorization_codes_expires_at", "expires_at"),
)

# Revision 0005: secrets every instance must share (the DPoP nonce key), made once.
server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("secret", String(128), nullable=False),
)


# Revision 0002: the key store in the database (AUTHSVC_KEY_STORE=database).
key_manifest = Table(
    "key_manifest",
    metadata,
    Column("id", Integer, primary_key=True),  # always 1: one document
    Column("generation", Integer, nullable=False),
    Column("document", Text, nullable=False),
    Column("updated_by", String(200), nullable=False),
)

private_keys = Table(
    "private_keys",
    metadata,
    Column("kid", String(128), primary_key=True),
    Column("pem", Text, nullable=False),  # encrypted PKCS#8
)
