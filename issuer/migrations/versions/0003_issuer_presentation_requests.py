"""Presentation requests this node made over OpenID4VP, and their verified outcomes.

Revision ID: issuer_0003_pres_requests (at most 32 characters: alembic_version.version_num is varchar(32) on PostgreSQL)
Revises: issuer_0002_offers
"""
import sqlalchemy as sa
from alembic import op

revision = "issuer_0003_pres_requests"
down_revision = "issuer_0002_offers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issuer_presentation_request",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("state_hash", sa.String, nullable=False, unique=True),
        sa.Column("nonce", sa.String, nullable=False),
        sa.Column("dcql_query", sa.Text, nullable=False),
        sa.Column("created", sa.String, nullable=False),
        sa.Column("expires", sa.String, nullable=False),
        sa.Column("answered", sa.String, nullable=True),
        sa.Column("outcome", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("issuer_presentation_request")
