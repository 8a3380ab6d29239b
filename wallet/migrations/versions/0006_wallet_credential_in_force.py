"""When each held credential is in force, stored (in_force_from, in_force_until), so that choosing what is usable
now is narrowed in the database instead of by reading every row's JSON.

The window is the one end rule the wallet reads everywhere (``wallet.store.WalletCredential.in_force``: validity
narrowed by the ``notBefore`` / ``notAfter`` an approval or a delegation's scope states); a held credential never
changes, so it is read once, on receipt, and here for every credential already held (no row is dropped or changed
otherwise).

Revision ID: wallet_0006
Revises: wallet_0005
"""
from datetime import timezone

import sqlalchemy as sa
from alembic import op

revision = "wallet_0006"
down_revision = "wallet_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("wallet_credential") as batch:
        batch.add_column(sa.Column("in_force_from", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("in_force_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_wallet_credential_in_force_until", "wallet_credential", ["in_force_until"])
    # every credential already held: its window by the same rule as on receipt
    from wallet.store import WalletCredential
    table = sa.table("wallet_credential", sa.column("id", sa.String()), sa.column("format", sa.String()),
                     sa.column("raw", sa.Text()), sa.column("valid_from", sa.DateTime(timezone=True)),
                     sa.column("valid_until", sa.DateTime(timezone=True)),
                     sa.column("in_force_from", sa.DateTime(timezone=True)),
                     sa.column("in_force_until", sa.DateTime(timezone=True)))
    conn = op.get_bind()
    rows = conn.execute(sa.select(table.c.id, table.c.format, table.c.raw, table.c.valid_from,
                                  table.c.valid_until)).all()
    for ident, fmt, raw, valid_from, valid_until in rows:
        starts, until = WalletCredential(id=ident, format=fmt, raw=raw, valid_from=valid_from,
                                         valid_until=valid_until).in_force()
        conn.execute(table.update().where(table.c.id == ident).values(
            in_force_from=starts and starts.astimezone(timezone.utc),
            in_force_until=until and until.astimezone(timezone.utc)))


def downgrade() -> None:
    op.drop_index("ix_wallet_credential_in_force_until", "wallet_credential")
    with op.batch_alter_table("wallet_credential") as batch:
        batch.drop_column("in_force_until")
        batch.drop_column("in_force_from")
