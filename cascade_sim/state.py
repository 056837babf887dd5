"""The site's own state: one SQLite file (``site.db``) of JSON resource bodies per kind, and
allocations (IPs, MACs, segmentation ids) whose uniqueness the database enforces.

The emulator's schema is created with ``create_all``: it is the emulator's private store, not
Cascade's, and a site-sim data dir is rebuilt rather than migrated.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from cascade.db import Database


class SimBase(DeclarativeBase):
    pass


class Resource(SimBase):
    __tablename__ = "resources"
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)


class Allocation(SimBase):
    """A value taken within a scope (an IP within a subnet, a MAC, a VNI) by one owner."""

    __tablename__ = "allocations"
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)


def new_uuid() -> str:
    return str(uuid.uuid4())


def now_iso() -> str:
    """OpenStack's timestamp form: ``2026-11-24T10:00:00Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SimState:
    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.data_dir = data_dir
        self.db = Database(f"sqlite:///{(data_dir / 'site.db').resolve()}")
        SimBase.metadata.create_all(self.db.engine)
        self.lock = threading.RLock()  # read-modify-write of one site's resources

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.lock, self.db.session() as session:
            yield session

    def put(self, kind: str, body: dict[str, Any], project_id: str) -> dict[str, Any]:
        with self.session() as session:
            session.merge(Resource(kind=kind, id=body["id"], project_id=project_id, body=body))
        return body

    def get(self, kind: str, resource_id: str) -> dict[str, Any] | None:
        with self.session() as session:
            row = session.get(Resource, (kind, resource_id))
            return dict(row.body) if row else None

    def list(self, kind: str, project_id: str | None = None) -> list[dict[str, Any]]:
        query = select(Resource.body).where(Resource.kind == kind)
        if project_id is not None:
            query = query.where(Resource.project_id == project_id)
        with self.session() as session:
            return [dict(body) for body in session.scalars(query)]

    def delete(self, kind: str, resource_id: str) -> None:
        with self.session() as session:
            session.execute(
                delete(Resource).where(Resource.kind == kind, Resource.id == resource_id)
            )

    def allocate(self, scope: str, value: str, owner: str) -> bool:
        """Take ``value`` in ``scope`` for ``owner``; False if someone else holds it."""
        try:
            with self.session() as session:
                existing = session.get(Allocation, (scope, value))
                if existing is not None:
                    return existing.owner == owner
                session.add(Allocation(scope=scope, value=value, owner=owner))
            return True
        except IntegrityError:
            return False

    def taken(self, scope: str) -> set[str]:
        with self.session() as session:
            return set(session.scalars(select(Allocation.value).where(Allocation.scope == scope)))

    def release(self, owner: str, scope: str | None = None) -> None:
        query = delete(Allocation).where(Allocation.owner == owner)
        if scope is not None:
            query = query.where(Allocation.scope == scope)
        with self.session() as session:
            session.execute(query)

    def close(self) -> None:
        self.db.dispose()
