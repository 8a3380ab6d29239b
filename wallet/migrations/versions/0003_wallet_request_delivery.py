"""Wallet table: what an approval delivers, and when it was delivered (so it can be delivered again).

Revision ID: wallet_0003
Revises: wallet_0002
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "wallet_0003"
down_revision = "wallet_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("wallet_request", sa.Column("delivery", sa.Text(), nullable=True))
    op.add_column("wallet_request", sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("wallet_request") as batch:
        batch.drop_column("delivered_at")
        batch.drop_column("delivery")
