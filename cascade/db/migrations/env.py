"""Alembic environment: runs migrations on the connection handed over by cascade.db.migrate."""

from alembic import context

from cascade.db import (  # noqa: F401 - their tables join Base.metadata
    delegation_models,
    domain_config_models,
    network_models,
    protection_models,
    replication_models,
)
from cascade.db.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
