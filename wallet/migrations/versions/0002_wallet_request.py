"""Wallet table: data-sharing requests received at ``POST /requests``.

Revision ID: wallet_0002
Revises: wallet_0001
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "wallet_0002"
down_revision = "wallet_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wallet_request",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("requester", sa.String(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("certifications", sa.Text(), nullable=False),
        sa.Column("presentation_digest", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("approval_id", sa.String(), nullable=True),
        sa.Column("decided_by", sa.String(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_wallet_request_requester", "wallet_request", ["requester"])
    op.create_index("ix_wallet_request_presentation_digest", "wallet_request", ["presentation_digest"], unique=True)
    op.create_index("ix_wallet_request_status", "wallet_request", ["status"])


def downgrade() -> None:
    op.drop_table("wallet_request")
