"""The key store in the database: one manifest row and the encrypted private keys.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_manifest",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "private_keys",
        sa.Column("kid", sa.String(128), primary_key=True),
        sa.Column("pem", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("private_keys")
    op.drop_table("key_manifest")
