"""Alembic environment: runs on the connection ``shared.migrate`` hands over (SQLite or PostgreSQL)."""

from alembic import context

from shared.models import Base

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds tables the way Alembic documents.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
