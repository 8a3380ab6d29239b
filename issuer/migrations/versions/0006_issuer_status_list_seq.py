"""One current status list per purpose: each list gets its place in its purpose's sequence (0, 1, 2, ...), and the
pair (purpose, seq) is unique, so two issuers opening "the next list" at once cannot both succeed.

Existing lists are numbered by id within their purpose (a node that raced before keeps its lists; only the newest
takes new entries).

Revision ID: issuer_0006_status_seq
Revises: issuer_0005_notifications
"""
import sqlalchemy as sa
from alembic import op

revision = "issuer_0006_status_seq"
down_revision = "issuer_0005_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issuer_status_list") as batch:
        batch.add_column(sa.Column("seq", sa.Integer, nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text("select id, purpose from issuer_status_list order by id")).fetchall()
    seqs: dict = {}
    for row_id, purpose in rows:
        seq = seqs.get(purpose, 0)
        seqs[purpose] = seq + 1
        conn.execute(sa.text("update issuer_status_list set seq = :seq where id = :id"), {"seq": seq, "id": row_id})
    with op.batch_alter_table("issuer_status_list") as batch:
        batch.alter_column("seq", existing_type=sa.Integer, nullable=False)
        batch.create_unique_constraint("uq_issuer_status_list_purpose_seq", ["purpose", "seq"])


def downgrade() -> None:
    with op.batch_alter_table("issuer_status_list") as batch:
        batch.drop_constraint("uq_issuer_status_list_purpose_seq", type_="unique")
        batch.drop_column("seq")
