"""The table of Keystone's domain-specific configuration (issue 18): a domain's options of the
``identity`` and ``ldap`` groups, as ``PUT /identity/v3/domains/{id}/config`` stores them. On
the declarative base of ``models``; migration 0026. In the identity change log, so replicas
hold it. Cascade stores it and acts on none of it (``cascade.identity.domain_config``).

A row goes with its domain at the database: the foreign key cascades, at the master and at
every replica applying the domain's deletion.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from cascade.db.models import Base


class DomainConfigOption(Base):
    """One option of a domain's configuration. ``sensitive`` options (Keystone's: the LDAP
    password) are stored, in plain text as Keystone stores them, and never shown."""

    __tablename__ = "domain_config_options"
    domain_id: Mapped[str] = mapped_column(
        ForeignKey("domains.id", ondelete="CASCADE"), primary_key=True
    )
    group_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    option_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
