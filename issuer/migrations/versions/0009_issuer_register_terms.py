"""The register keeps an approval's datasets and purposes (public metadata), so the node can publish the approvals
in force per dataset for its catalogue to harvest (issuer.catalogue.approvals_in_force).

Revision ID: issuer_0009_register_terms
Revises: issuer_0008_ledger
"""
import sqlalchemy as sa
from alembic import op

revision = "issuer_0009_register_terms"
down_revision = "issuer_0008_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issuer_credential") as batch:
        batch.add_column(sa.Column("datasets", sa.Text, nullable=True))
        batch.add_column(sa.Column("purposes", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("issuer_credential") as batch:
        batch.drop_column("purposes")
        batch.drop_column("datasets")
