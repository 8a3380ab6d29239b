"""Idempotent issuing: what each issuing request returned, by credential id and (optional) idempotency key.

Revision ID: issuer_0007_issue_record
Revises: issuer_0006_status_seq
"""
import sqlalchemy as sa
from alembic import op

revision = "issuer_0007_issue_record"
down_revision = "issuer_0006_status_seq"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issuer_issue_record",
        sa.Column("credential_id", sa.String, primary_key=True),
        sa.Column("key_hash", sa.String, nullable=True),
        sa.Column("request_hash", sa.String, nullable=False),
        sa.Column("issued_by", sa.String, nullable=True),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("created", sa.String, nullable=False),
        sa.UniqueConstraint("key_hash", name="uq_issuer_issue_record_key_hash"),
    )


def downgrade() -> None:
    op.drop_table("issuer_issue_record")
