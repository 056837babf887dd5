"""Keystone v3 role bodies that may name a domain (domain-specific roles), as Pydantic
models; the other identity bodies are ``cascade.identity.schemas``."""

from __future__ import annotations

from pydantic import Field

from cascade.identity.schemas import RoleIn


class DomainRoleIn(RoleIn):
    """A role to create: global, or (``domain_id``) one of that domain's."""

    domain_id: str | None = Field(None, min_length=1, max_length=64)
