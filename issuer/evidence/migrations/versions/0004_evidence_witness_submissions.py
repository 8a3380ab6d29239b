"""The witnesses this node's log is submitted to (config.yaml witnesses:): per witness URL, the size it last
co-signed, the last refusal, when to try again, and a claim so the served node and `cead witness submit` (cron)
never submit to one witness at the same time.

Revision ID: evidence_0004
Revises: evidence_0003
"""
import sqlalchemy as sa
from alembic import op

revision = "evidence_0004"
down_revision = "evidence_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tlog_submission",
        sa.Column("url", sa.String(2048), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=True),          # the size the witness last co-signed
        sa.Column("cosigner", sa.String(512), nullable=True),     # the name in its cosignature line (its DID)
        sa.Column("cosigned_at", sa.String(40), nullable=True),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),   # refusals in a row
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("refused_size", sa.BigInteger, nullable=True),  # the size of the checkpoint last refused
        sa.Column("next_attempt", sa.String(40), nullable=True),  # the served node's retry after a refusal
        sa.Column("claimed_until", sa.String(40), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("tlog_submission")
