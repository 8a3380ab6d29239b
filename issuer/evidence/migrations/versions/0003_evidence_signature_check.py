"""A recipient's copy of a receipt records whether the gateway's signature verified when it arrived.

Revision ID: evidence_0003
Revises: evidence_0002
"""
import sqlalchemy as sa
from alembic import op

revision = "evidence_0003"
down_revision = "evidence_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evidence_receipt") as batch:
        batch.add_column(sa.Column("signature_check", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evidence_receipt") as batch:
        batch.drop_column("signature_check")
