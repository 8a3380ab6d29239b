"""Wallet tables: held credentials and their search terms.

Revision ID: wallet_0001
Revises:
Create Date: 2026-11-26

Run by ``issuer.db.migrate(engine, extra_version_locations=[wallet/migrations/versions])`` with its own version
table (``alembic_version_wallet``), so the issuer's and the wallet's histories never block each other.
"""
import sqlalchemy as sa
from alembic import op

revision = "wallet_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wallet_credential",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("digest", sa.String(), nullable=False),
        sa.Column("format", sa.String(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("credential_id", sa.String(), nullable=True),
        sa.Column("types", sa.Text(), nullable=False),
        sa.Column("issuer", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_at_receipt", sa.String(), nullable=False),
        sa.Column("status_now", sa.String(), nullable=False),
        sa.Column("status_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(), nullable=True),
    )
    op.create_index("ix_wallet_credential_digest", "wallet_credential", ["digest"], unique=True)
    op.create_index("ix_wallet_credential_issuer", "wallet_credential", ["issuer"])
    op.create_index("ix_wallet_credential_subject", "wallet_credential", ["subject"])
    op.create_index("ix_wallet_credential_valid_until", "wallet_credential", ["valid_until"])
    op.create_table(
        "wallet_term",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("credential_id", sa.Text(), sa.ForeignKey("wallet_credential.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.UniqueConstraint("credential_id", "kind", "value"),
    )
    op.create_index("ix_wallet_term_credential_id", "wallet_term", ["credential_id"])
    op.create_index("ix_wallet_term_kv", "wallet_term", ["kind", "value"])


def downgrade() -> None:
    op.drop_table("wallet_term")
    op.drop_table("wallet_credential")
