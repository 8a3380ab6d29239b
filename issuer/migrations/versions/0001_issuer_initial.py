"""Issuer tables: status lists and entries, the credential register, status events, bearer tokens.

Revision ID: issuer_0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "issuer_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issuer_status_list",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("purpose", sa.String, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("signed", sa.Text, nullable=True),
        sa.Column("signed_version", sa.Integer, nullable=False, server_default="-1"),
        sa.Column("created", sa.String, nullable=False),
    )
    op.create_index("ix_issuer_status_list_purpose", "issuer_status_list", ["purpose"])
    op.create_table(
        "issuer_status_entry",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("list_id", sa.Integer, sa.ForeignKey("issuer_status_list.id"), nullable=False),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("purpose", sa.String, nullable=False),
        sa.Column("credential_id", sa.String, nullable=False),
        sa.Column("value", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.UniqueConstraint("list_id", "idx", name="uq_issuer_status_entry_list_idx"),
    )
    op.create_index("ix_issuer_status_entry_list_id", "issuer_status_entry", ["list_id"])
    op.create_index("ix_issuer_status_entry_credential_id", "issuer_status_entry", ["credential_id"])
    op.create_table(
        "issuer_credential",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("types", sa.String, nullable=False),
        sa.Column("subject", sa.String, nullable=True),
        sa.Column("issued_at", sa.String, nullable=False),
        sa.Column("valid_from", sa.String, nullable=True),
        sa.Column("valid_until", sa.String, nullable=True),
        sa.Column("format", sa.String, nullable=False),
        sa.Column("verification_method", sa.String, nullable=False),
        sa.Column("digest", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False, server_default="active"),
        sa.Column("status_entries", sa.Text, nullable=False, server_default="[]"),
        sa.Column("issued_by", sa.String, nullable=True),
        sa.Column("updated_at", sa.String, nullable=False),
    )
    op.create_index("ix_issuer_credential_issued_at", "issuer_credential", ["issued_at"])
    op.create_table(
        "issuer_status_event",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("credential_id", sa.String, nullable=False),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("at", sa.String, nullable=False),
        sa.Column("by", sa.String, nullable=True),
        sa.Column("reason", sa.String, nullable=True),
    )
    op.create_index("ix_issuer_status_event_credential_id", "issuer_status_event", ["credential_id"])
    op.create_table(
        "issuer_token",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String, nullable=False, unique=True),
        sa.Column("token_hash", sa.String, nullable=False, unique=True),
        sa.Column("scopes", sa.String, nullable=False),
        sa.Column("created", sa.String, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    for table in ("issuer_token", "issuer_status_event", "issuer_credential", "issuer_status_entry",
                  "issuer_status_list"):
        op.drop_table(table)
