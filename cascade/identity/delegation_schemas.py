"""Keystone v3 request and response bodies of delegation, as Pydantic models (the API's
OpenAPI schemas): application credentials, their access rules, and trusts (OS-TRUST). The
token sections they add are in ``cascade.identity.schemas`` with the token body."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from cascade.identity.schemas import AccessRuleOut, Id, Links, Name, SelfLink, _In

AccessMethod = Literal["DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"]


class RoleRefIn(_In):
    """A role by id or by name (Keystone takes exactly one)."""

    id: str | None = Field(None, min_length=1, max_length=64)
    name: str | None = Field(None, min_length=1, max_length=255)


class AccessRuleIn(_In):
    id: str | None = Field(None, min_length=1, max_length=64)
    service: str | None = Field(None, min_length=1, max_length=64)
    path: str | None = Field(None, max_length=225, pattern=r"^/")
    method: AccessMethod | None = None


class AppCredIn(_In):
    name: str = Name
    description: str | None = Field(None, max_length=65535)
    secret: str | None = Field(None, min_length=1, max_length=4096)
    expires_at: str | None = Field(None, max_length=64)
    roles: list[RoleRefIn] | None = Field(None, max_length=100)
    unrestricted: bool | None = None
    access_rules: list[AccessRuleIn] | None = Field(None, max_length=100)


class AppCredBody(_In):
    application_credential: AppCredIn


class DelegatedRole(BaseModel):
    id: str
    name: str
    domain_id: str | None = None
    description: str | None = None


class AppCredOut(BaseModel):
    id: str
    name: str
    description: str | None
    user_id: str
    project_id: str
    expires_at: str | None
    unrestricted: bool
    roles: list[DelegatedRole]
    access_rules: list[AccessRuleOut]
    links: SelfLink


class AppCredCreated(AppCredOut):
    secret: str = Field(description="Shown only here: Cascade keeps a hash of it")


class AppCredResponse(BaseModel):
    application_credential: AppCredOut


class AppCredCreatedResponse(BaseModel):
    application_credential: AppCredCreated


class AppCredList(BaseModel):
    application_credentials: list[AppCredOut]
    links: Links


class AccessRuleShown(AccessRuleOut):
    links: SelfLink


class AccessRuleResponse(BaseModel):
    access_rule: AccessRuleShown


class AccessRuleList(BaseModel):
    access_rules: list[AccessRuleShown]
    links: Links


class TrustIn(_In):
    trustor_user_id: str = Id
    trustee_user_id: str = Id
    impersonation: bool
    project_id: str | None = Field(None, min_length=1, max_length=64)
    roles: list[RoleRefIn] = Field(default_factory=list, max_length=100)
    expires_at: str | None = Field(None, max_length=64)
    remaining_uses: int | None = Field(None, ge=1, le=2**31 - 1)
    allow_redelegation: bool | None = None
    redelegation_count: int | None = Field(None, ge=0, le=2**31 - 1)


class TrustBody(_In):
    trust: TrustIn


class TrustRoleOut(BaseModel):
    id: str
    name: str
    domain_id: str | None = None
    links: SelfLink


class TrustOut(BaseModel):
    id: str
    trustor_user_id: str
    trustee_user_id: str
    project_id: str | None
    impersonation: bool
    expires_at: str | None
    remaining_uses: int | None
    allow_redelegation: bool
    redelegation_count: int
    redelegated_trust_id: str | None
    deleted_at: str | None = None
    roles: list[TrustRoleOut] | None = None
    roles_links: Links | None = None
    links: SelfLink


class TrustResponse(BaseModel):
    trust: TrustOut


class TrustList(BaseModel):
    trusts: list[TrustOut]
    links: Links


class TrustRoleList(BaseModel):
    roles: list[TrustRoleOut]
    links: Links


class TrustRoleResponse(BaseModel):
    role: TrustRoleOut
