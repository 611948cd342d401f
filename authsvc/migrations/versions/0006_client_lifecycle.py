"""Client lifecycle: a rotated secret's predecessor and how long it still works, and a JWKS URI
for private_key_jwt clients whose keys live with them.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("clients", sa.Column("previous_secret_hash", sa.String(512)))
    op.add_column("clients", sa.Column("previous_secret_until", sa.Float))
    op.add_column("clients", sa.Column("jwks_uri", sa.Text))
    op.add_column("clients", sa.Column("updated_at", sa.Float))


def downgrade() -> None:
    # Plain ALTER TABLE DROP COLUMN (SQLite >= 3.35): a batch rebuild would cascade deletes.
    for name in ("updated_at", "jwks_uri", "previous_secret_until", "previous_secret_hash"):
        op.drop_column("clients", name)
