"""The datasets of the DCAT catalogues this node imported (removed ones flagged, never deleted).

Revision ID: issuer_0004_catalogue
Revises: issuer_0003_presentation_requests
"""
import sqlalchemy as sa
from alembic import op

revision = "issuer_0004_catalogue"
down_revision = "issuer_0003_pres_requests"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issuer_catalogue_dataset",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("iri", sa.String, nullable=False),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("controller", sa.String, nullable=True),
        sa.Column("first_seen", sa.String, nullable=False),
        sa.Column("last_seen", sa.String, nullable=False),
        sa.Column("removed_at", sa.String, nullable=True),
        sa.UniqueConstraint("source", "iri", name="uq_issuer_catalogue_dataset_source_iri"),
    )
    op.create_index("ix_issuer_catalogue_dataset_iri", "issuer_catalogue_dataset", ["iri"])
    op.create_index("ix_issuer_catalogue_dataset_source", "issuer_catalogue_dataset", ["source"])


def downgrade() -> None:
    op.drop_table("issuer_catalogue_dataset")
