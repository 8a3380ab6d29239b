"""Alembic environment shared by every package's migrations; run through ``issuer.db.migrate``."""
from alembic import context

config = context.config
connection = config.attributes["connection"]
context.configure(connection=connection, target_metadata=None,
                  version_table=config.attributes.get("version_table", "alembic_version_issuer"),
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
