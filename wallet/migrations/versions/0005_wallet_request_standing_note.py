"""Why a request was, or was not, approved automatically under a standing approval (wallet.standing).

Revision ID: wallet_0005
Revises: wallet_0004
"""
import sqlalchemy as sa
from alembic import op

revision = "wallet_0005"
down_revision = "wallet_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("wallet_request") as batch:
        batch.add_column(sa.Column("standing_note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("wallet_request") as batch:
        batch.drop_column("standing_note")
