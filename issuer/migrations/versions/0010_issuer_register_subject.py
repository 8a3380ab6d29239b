"""The register keeps the subject's name as the credential states it (a delegation's ``name``, a certification's
``legalName``), so the DPO's register shows who a credential was issued to, not only their DID.

Revision ID: issuer_0010_register_subject
Revises: issuer_0009_register_terms
"""
import sqlalchemy as sa
from alembic import op

revision = "issuer_0010_register_subject"
down_revision = "issuer_0009_register_terms"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issuer_credential") as batch:
        batch.add_column(sa.Column("subject_name", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("issuer_credential") as batch:
        batch.drop_column("subject_name")
