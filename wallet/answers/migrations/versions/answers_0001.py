"""Answers to this node's data-sharing requests: refusals and requests for changes, as delivered by the data
holder's node (``wallet.answers``). Own version table ``alembic_version_answers``.

Revision ID: answers_0001
Revises:
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "answers_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wallet_request_answer",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("sender", sa.String(), nullable=False),
        sa.Column("request_ref", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("presentation_digest", sa.String(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_wallet_request_answer_digest", "wallet_request_answer", ["presentation_digest"], unique=True)


def downgrade() -> None:
    op.drop_table("wallet_request_answer")
