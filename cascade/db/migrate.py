"""Schema migrations through Alembic, run programmatically (no alembic.ini needed)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from cascade.db.database import Database
from cascade.errors import present


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", "cascade.db:migrations")
    return config


def upgrade(db: Database) -> str:
    """Migrate to the newest revision; returns it. Safe to run any number of times."""
    config = _config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return head()


def head() -> str:
    head_revision = present(
        ScriptDirectory.from_config(_config()).get_current_head(), "the migrations' head"
    )
    return head_revision


def current(db: Database) -> str | None:
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
