"""A witness that follows a log's key rotation by itself (issuer.evidence.witness.add_key) records the key it
followed from and the size of the checkpoint it followed at, so `cead witness list` shows the change.

Revision ID: evidence_0005
Revises: evidence_0004
"""
import sqlalchemy as sa
from alembic import op

revision = "evidence_0005"
down_revision = "evidence_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tlog_witnessed") as batch:
        batch.add_column(sa.Column("previous_vkey", sa.Text, nullable=True))     # the key it followed from
        batch.add_column(sa.Column("key_since", sa.BigInteger, nullable=True))   # the handover checkpoint's size
        batch.add_column(sa.Column("key_followed_at", sa.String(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tlog_witnessed") as batch:
        batch.drop_column("key_followed_at")
        batch.drop_column("key_since")
        batch.drop_column("previous_vkey")
