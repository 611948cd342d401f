"""DPoP: clients that must send proofs, codes bound to a proof key, and the secret that server
nonces are made from (shared by every instance through the database).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "clients", sa.Column("require_dpop", sa.Boolean, nullable=False, server_default=sa.text("false"))
    )
    op.add_column("authorization_codes", sa.Column("dpop_jkt", sa.String(64)))
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("secret", sa.String(128), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("server_secrets")
    # Plain ALTER TABLE DROP COLUMN (SQLite >= 3.35): a batch rebuild would cascade deletes.
    op.drop_column("authorization_codes", "dpop_jkt")
    op.drop_column("clients", "require_dpop")
