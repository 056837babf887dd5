"""State: SQLAlchemy models, the engine for each backend, Alembic migrations.

Owns every table. Imports only SQLAlchemy, Alembic, ``cascade.config`` and ``cascade.errors``;
every other package reaches the database through ``cascade.db.Database``.
"""

from cascade.db.database import Database

__all__ = ["Database"]
