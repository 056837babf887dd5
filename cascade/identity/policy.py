"""Who may do what: one rule for every route, native and Keystone alike.

``admin`` may do everything everywhere (Keystone's legacy ``role:admin``), and so may a
system-scoped token with ``admin`` on the system. A system-scoped token with ``reader`` (or
``member``, which implies it) may read every project's resources and change none. Inside a
project, ``member`` may read and change the project's resources and ``reader`` may read them;
the token must be scoped to that project. A tenant never sees another project's resources:
``visible_projects`` says which projects a caller sees, ``sees`` whether one resource is
among them, ``seen`` loads one resource the caller sees (another project's is not found,
never forbidden: its existence is not told) and ``seen_by`` narrows a listing's query to them.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import QueryableAttribute, Session

from cascade.errors import Forbidden, NotFound
from cascade.identity.tokens import AuthContext

Need = Literal["reader", "member", "admin"]
Query = TypeVar("Query", bound=Select[*tuple[Any, ...]])


class Owned(Protocol):
    """A row that belongs to a project."""

    @property
    def project_id(self) -> str | None: ...


Row = TypeVar("Row", bound=Owned)


def authorize(ctx: AuthContext, need: Need, project_id: str | None = None) -> None:
    """Raise 403 unless the caller holds ``need`` on ``project_id`` (or is an admin)."""
    if ctx.is_admin:
        return
    if need == "reader" and _system_reader(ctx):
        return
    if need == "admin" or project_id is None:
        raise Forbidden("You are not authorized to perform the requested action: admin required.")
    if ctx.project is None or ctx.project.id != project_id:
        raise Forbidden(
            "You are not authorized to perform the requested action: "
            f"the token is not scoped to project {project_id}."
        )
    if need not in ctx.role_names:
        raise Forbidden(
            f"You are not authorized to perform the requested action: {need} role required."
        )


def visible_projects(ctx: AuthContext) -> set[str] | None:
    """Project ids whose resources the caller may list; None means all of them (admin)."""
    if ctx.is_admin or _system_reader(ctx):
        return None
    if ctx.project is not None and "reader" in ctx.role_names:
        return {ctx.project.id}
    return set()


def sees(projects: set[str] | None, project_id: str | None) -> bool:
    """Whether a caller who sees ``projects`` (``visible_projects``; None: all of them) sees
    a resource of ``project_id``."""
    return projects is None or project_id in projects


def seen(
    session: Session, model: type[Row], row_id: str, projects: set[str] | None, what: str
) -> Row:
    """The ``model`` row ``row_id`` if a caller who sees ``projects`` sees it; otherwise 404
    ("Could not find {what}: {row_id}.")."""
    row = session.get(model, row_id)
    if row is None or not sees(projects, row.project_id):
        raise NotFound(f"Could not find {what}: {row_id}.")
    return row


def seen_by(query: Query, project_id: QueryableAttribute[Any], projects: set[str] | None) -> Query:
    """``query`` narrowed to the rows whose ``project_id`` column is one of ``projects``
    (``visible_projects``; None: all of them)."""
    return query if projects is None else query.where(project_id.in_(projects))


def _system_reader(ctx: AuthContext) -> bool:
    return ctx.system and "reader" in ctx.role_names
