"""The notification outbox: one row per message to a webhook or Teams subscriber, kept until delivered or failed.

Revision ID: issuer_0005_notifications
Revises: issuer_0004_catalogue
"""
import sqlalchemy as sa
from alembic import op

revision = "issuer_0005_notifications"
down_revision = "issuer_0004_catalogue"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issuer_notification",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("subscription", sa.String, nullable=False),
        sa.Column("event", sa.String, nullable=False),
        sa.Column("subject", sa.String, nullable=True),
        sa.Column("url", sa.String, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created", sa.String, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt", sa.String, nullable=False),
        sa.Column("delivered_at", sa.String, nullable=True),
        sa.Column("failed_at", sa.String, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    for column in ("subscription", "event", "subject", "next_attempt"):
        op.create_index(f"ix_issuer_notification_{column}", "issuer_notification", [column])


def downgrade() -> None:
    op.drop_table("issuer_notification")
