"""Trust rules: credential versions, PRECIS usernames, client tombstones, shared
login counters, and an index for the grace-body sweeper.

Revision ID: 0003
Revises: 0002

Existing usernames are rewritten to their PRECIS UsernameCaseMapped form (RFC
8265) with their look-alike key, so that logins, which map what is typed, still
find them. A name that cannot be mapped, or whose mapped form or key another
account already holds, is kept as it is without a key (a warning names its id).
Columns are only added (no table is rebuilt: on SQLite that would cascade
deletes through the foreign keys).
"""

import logging

import sqlalchemy as sa
from alembic import op

from authsvc.usernames import InvalidUsername, new_username

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

log = logging.getLogger("authsvc")


def upgrade() -> None:
    op.add_column("users", sa.Column("credentials_version", sa.Integer, nullable=False, server_default="0"))
    op.add_column("users", sa.Column("username_key", sa.String(600)))
    _map_usernames()
    op.create_index("ux_users_username_key", "users", ["username_key"], unique=True)
    op.add_column("clients", sa.Column("removed_at", sa.Float))
    op.create_table(
        "login_counters",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_login_counters_expires_at", "login_counters", ["expires_at"])
    op.create_index(
        "ix_refresh_tokens_grace_until",
        "refresh_tokens",
        ["grace_until"],
        sqlite_where=sa.text("grace_body IS NOT NULL"),
        postgresql_where=sa.text("grace_body IS NOT NULL"),
    )


def _map_usernames() -> None:
    conn = op.get_bind()
    users = sa.table("users", sa.column("id"), sa.column("username"), sa.column("username_key"))
    rows = conn.execute(sa.select(users.c.id, users.c.username).order_by(users.c.id)).all()
    names = {row.username for row in rows}
    taken_keys: set[str] = set()
    for row in rows:
        try:
            name, key = new_username(row.username)
        except InvalidUsername:
            log.warning("user %s keeps a name that is not a PRECIS username", row.id)
            continue
        if (name != row.username and name in names) or key in taken_keys:
            log.warning("user %s keeps its name: it looks like another account's", row.id)
            continue
        names.discard(row.username)
        names.add(name)
        taken_keys.add(key)
        conn.execute(sa.update(users).where(users.c.id == row.id).values(username=name, username_key=key))


def downgrade() -> None:
    op.drop_index("ix_refresh_tokens_grace_until", "refresh_tokens")
    op.drop_index("ix_login_counters_expires_at", "login_counters")
    op.drop_table("login_counters")
    # Plain ALTER TABLE DROP COLUMN (SQLite >= 3.35): a batch rebuild would cascade deletes.
    op.drop_column("clients", "removed_at")
    op.drop_index("ux_users_username_key", "users")
    op.drop_column("users", "username_key")
    op.drop_column("users", "credentials_version")
