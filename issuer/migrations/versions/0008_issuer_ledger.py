"""The privacy-budget ledger: one lock row per dataset, every release recorded before its data leave, and the
outputs kept for differencing (issuer/ledger.py).

Revision ID: issuer_0008_ledger
Revises: issuer_0007_issue_record
"""
import sqlalchemy as sa
from alembic import op

revision = "issuer_0008_ledger"
down_revision = "issuer_0007_issue_record"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issuer_ledger_account",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dataset", sa.String, nullable=False, unique=True),
        sa.Column("created", sa.String, nullable=False),
    )
    op.create_table(
        "issuer_ledger_release",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("dataset", sa.String, nullable=False),
        sa.Column("subjects", sa.Text, nullable=False, server_default="[]"),
        sa.Column("unit", sa.String, nullable=True),
        sa.Column("approval", sa.String, nullable=False),
        sa.Column("recipient", sa.String, nullable=False),
        sa.Column("mechanism", sa.String, nullable=True),
        sa.Column("epsilon", sa.Float, nullable=True),
        sa.Column("delta", sa.Float, nullable=True),
        sa.Column("rho", sa.Float, nullable=True),
        sa.Column("series", sa.String, nullable=True),
        sa.Column("output_sha256", sa.String, nullable=True),
        sa.Column("at", sa.String, nullable=False),
    )
    op.create_index("ix_issuer_ledger_release_dataset", "issuer_ledger_release", ["dataset"])
    op.create_index("ix_issuer_ledger_release_at", "issuer_ledger_release", ["at"])
    op.create_table(
        "issuer_ledger_output",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dataset", sa.String, nullable=False),
        sa.Column("series", sa.String, nullable=False),
        sa.Column("sha256", sa.String, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("approval", sa.String, nullable=False),
        sa.Column("recipient", sa.String, nullable=False),
        sa.Column("at", sa.String, nullable=False),
        sa.UniqueConstraint("dataset", "series", "sha256", name="uq_issuer_ledger_output_series_sha"),
    )
    op.create_index("ix_issuer_ledger_output_dataset", "issuer_ledger_output", ["dataset"])


def downgrade() -> None:
    for table in ("issuer_ledger_output", "issuer_ledger_release", "issuer_ledger_account"):
        op.drop_table(table)
