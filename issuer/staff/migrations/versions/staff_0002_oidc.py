"""Staff accounts signed in through OpenID Connect: the issuer and subject of the person's identity there.

An account with both set is linked to that identity (``issuer.staff.oidc``); one with neither is a local account.

Revision ID: staff_0002
Revises: staff_0001
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "staff_0002"
down_revision = "staff_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("staff_account", sa.Column("oidc_issuer", sa.String(), nullable=True))
    op.add_column("staff_account", sa.Column("oidc_subject", sa.String(), nullable=True))
    op.create_index("ix_staff_account_oidc", "staff_account", ["oidc_issuer", "oidc_subject"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_staff_account_oidc", table_name="staff_account")
    with op.batch_alter_table("staff_account") as batch:
        batch.drop_column("oidc_subject")
        batch.drop_column("oidc_issuer")
