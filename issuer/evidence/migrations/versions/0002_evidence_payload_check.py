"""A recipient's copy of a receipt records whether the bytes it received (or sent) are the bytes the receipt names.

Revision ID: evidence_0002
Revises: evidence_0001
"""
import sqlalchemy as sa
from alembic import op

revision = "evidence_0002"
down_revision = "evidence_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evidence_receipt") as batch:
        batch.add_column(sa.Column("payload_check", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evidence_receipt") as batch:
        batch.drop_column("payload_check")
