"""Precedents: decision summaries from the signed feeds of followed peer nodes.

Revision ID: wallet_0004
Revises: wallet_0003
"""
import sqlalchemy as sa
from alembic import op

revision = "wallet_0004"
down_revision = "wallet_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wallet_precedent",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("feed_url", sa.String(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_wallet_precedent_source", "wallet_precedent", ["source"])


def downgrade() -> None:
    op.drop_table("wallet_precedent")
