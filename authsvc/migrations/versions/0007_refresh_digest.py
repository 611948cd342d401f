"""A refresh token's digest on its row: the row, not our signature, authenticates a presented token.

Rows written before this revision have none; a refresh of one of them checks
the token's signature as before.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("refresh_tokens", sa.Column("digest", sa.String(64)))


def downgrade() -> None:
    # Plain ALTER TABLE DROP COLUMN (SQLite >= 3.35): a batch rebuild would cascade deletes.
    op.drop_column("refresh_tokens", "digest")
