"""Registered sites by name: every site's name by its id (``site_names``, for rendering lists),
and which sites a per-site table's rows name (``sites_named_by``: (site id, site name) pairs,
each site once, in name order, as the steps that fan a resource's work out to its sites want
them: a network's segments, a keypair's copies). May import cascade.db and SQLAlchemy."""

from __future__ import annotations

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import QueryableAttribute, Session

from cascade.db.models import Site


def sites_named_by(
    session: Session, site_id: QueryableAttribute[str], *where: ColumnElement[bool]
) -> list[tuple[str, str]]:
    """(id, name) of the sites that the column ``site_id`` holds in the rows of its table
    matching every condition of ``where``."""
    rows = session.execute(
        select(Site.id, Site.name).where(Site.id == site_id, *where).distinct().order_by(Site.name)
    ).all()
    return [(row[0], row[1]) for row in rows]


def site_names(session: Session) -> dict[str, str]:
    """Every site's name by its id, a removed site's too (old records name it): one
    statement for a whole list."""
    return {site_id: name for site_id, name in session.execute(select(Site.id, Site.name))}
