"""One way to reach the database: ``Database(url)`` gives an engine and transactional sessions.

Backends differ only in how a connection is prepared; each is one small function in
``cascade.db.backends``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from cascade.db.backends import backend_for


class Database:
    def __init__(self, url: str) -> None:
        backend = backend_for(url)
        self.url = url
        self.dialect = backend.name
        self.engine: Engine = create_engine(url, **backend.engine_options())
        backend.prepare(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on any error."""
        with self._sessions.begin() as session:
            yield session

    def listen(self, identifier: str, handler: Callable[..., None]) -> None:
        """Register a SQLAlchemy session event handler for this database's sessions."""
        event.listen(self._sessions, identifier, handler)

    def dispose(self) -> None:
        self.engine.dispose()
