"""Credential offers (OID4VCI pre-authorised code flow): codes and tokens stored hashed.

Revision ID: issuer_0002_offers
Revises: issuer_0001
"""
import sqlalchemy as sa
from alembic import op

revision = "issuer_0002_offers"
down_revision = "issuer_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issuer_credential_offer",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code_hash", sa.String, nullable=False, unique=True),
        sa.Column("tx_code_hash", sa.String, nullable=True),
        sa.Column("credential_id", sa.String, nullable=False),
        sa.Column("credential", sa.Text, nullable=False),
        sa.Column("configuration_id", sa.String, nullable=False),
        sa.Column("subject", sa.String, nullable=False),
        sa.Column("created", sa.String, nullable=False),
        sa.Column("expires", sa.String, nullable=False),
        sa.Column("token_hash", sa.String, nullable=True, unique=True),
        sa.Column("token_expires", sa.String, nullable=True),
        sa.Column("redeemed", sa.String, nullable=True),
        sa.Column("failed_tx", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_issuer_credential_offer_credential_id", "issuer_credential_offer", ["credential_id"])


def downgrade() -> None:
    op.drop_table("issuer_credential_offer")
