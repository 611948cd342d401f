"""Browser sign-in: client redirect URIs and flags, browser sessions, consents, pending
requests (interactions and PAR) and authorization codes.

Revision ID: 0004
Revises: 0003

Columns are only added (no table is rebuilt: on SQLite that would cascade deletes
through the foreign keys).
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for name in ("redirect_uris", "post_logout_redirect_uris", "web_origins"):
        op.add_column("clients", sa.Column(name, sa.Text, nullable=False, server_default=""))
    for name in ("first_party", "require_par"):
        op.add_column("clients", sa.Column(name, sa.Boolean, nullable=False, server_default=sa.text("false")))
    op.add_column("sessions", sa.Column("browser_session_id", sa.String(64)))
    op.create_index("ix_sessions_browser_session_id", "sessions", ["browser_session_id"])
    op.create_table(
        "browser_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("auth_time", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("credentials_version", sa.Integer, nullable=False),
        sa.Column("revoked_at", sa.Float),
    )
    op.create_index("ix_browser_sessions_user_id", "browser_sessions", ["user_id"])
    op.create_index("ix_browser_sessions_expires_at", "browser_sessions", ["expires_at"])
    op.create_table(
        "consents",
        sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("client_id", sa.String(200), primary_key=True),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("granted_at", sa.Float, nullable=False),
    )
    op.create_table(
        "pending_requests",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("client_id", sa.String(200), nullable=False),
        sa.Column("parameters", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_pending_requests_expires_at", "pending_requests", ["expires_at"])
    op.create_table(
        "authorization_codes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(200), nullable=False),
        sa.Column("redirect_uri", sa.Text, nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("nonce", sa.Text),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("browser_session_id", sa.String(64), nullable=False),
        sa.Column("auth_time", sa.Float, nullable=False),
        sa.Column("credentials_version", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("used_at", sa.Float),
        sa.Column("session_id", sa.String(64)),
    )
    op.create_index("ix_authorization_codes_expires_at", "authorization_codes", ["expires_at"])


def downgrade() -> None:
    op.drop_table("authorization_codes")
    op.drop_table("pending_requests")
    op.drop_table("consents")
    op.drop_table("browser_sessions")
    op.drop_index("ix_sessions_browser_session_id", "sessions")
    # Plain ALTER TABLE DROP COLUMN (SQLite >= 3.35): a batch rebuild would cascade deletes.
    op.drop_column("sessions", "browser_session_id")
    for name in ("require_par", "first_party", "web_origins", "post_logout_redirect_uris", "redirect_uris"):
        op.drop_column("clients", name)
