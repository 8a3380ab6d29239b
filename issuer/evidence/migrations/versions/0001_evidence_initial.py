"""Evidence tables: the node's append-only Merkle log (entries, complete-subtree hashes, head, signed checkpoints),
the checkpoints this node has witnessed for other logs, and stored decision receipts.

Revision ID: evidence_0001
Revises:
Run by ``issuer.db.migrate`` with its own version table (``alembic_version_evidence``).
"""
import sqlalchemy as sa
from alembic import op

revision = "evidence_0001"
down_revision = None
branch_labels = ("evidence",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tlog_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(sa.table("tlog_head", sa.column("id", sa.Integer), sa.column("size", sa.BigInteger)),
                   [{"id": 1, "size": 0}])
    op.create_table(
        "tlog_entry",
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("entry", sa.LargeBinary, nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
    )
    op.create_index("ix_tlog_entry_kind", "tlog_entry", ["kind"])
    op.create_table(
        "tlog_digest",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    )
    op.create_table(
        "tlog_hash",
        sa.Column("level", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_table(
        "tlog_checkpoint",
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
    )
    op.create_table(
        "tlog_witnessed",
        sa.Column("origin", sa.String(255), primary_key=True),
        sa.Column("vkey", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("at", sa.String(32), nullable=False),
    )
    op.create_table(
        "evidence_receipt",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("side", sa.String(16), nullable=False),          # provider | recipient
        sa.Column("gateway", sa.String(512), nullable=True),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("approval", sa.String(512), nullable=True),
        sa.Column("holder", sa.String(512), nullable=True),
        sa.Column("payload_sha256", sa.String(64), nullable=True),
        sa.Column("rows", sa.BigInteger, nullable=True),
        sa.Column("log_index", sa.BigInteger, nullable=True),
        sa.Column("token", sa.Text, nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
    )
    op.create_index("ix_evidence_receipt_approval", "evidence_receipt", ["approval"])


def downgrade() -> None:
    for table in ("evidence_receipt", "tlog_witnessed", "tlog_checkpoint", "tlog_hash", "tlog_digest", "tlog_entry", "tlog_head"):
        op.drop_table(table)
