"""Keystone v3 request and response bodies, as Pydantic models (the API's OpenAPI schemas)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Name = Field(min_length=1, max_length=255)
ShortName = Field(min_length=1, max_length=64)  # Keystone's limit for domain/project/group names
Id = Field(min_length=1, max_length=64)
Tag = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^/,]+$")]


class _In(BaseModel):
    """Request bodies ignore unknown keys, as Keystone does, but check the ones they know."""

    model_config = ConfigDict(extra="ignore", strict=True)


class _WithExtra(_In):
    """A resource that keeps attributes it does not know (Keystone's ``extra``, e.g. a
    user's ``email``) and gives them back as it got them."""

    model_config = ConfigDict(extra="allow", strict=True)


class _OutWithExtra(BaseModel):
    model_config = ConfigDict(extra="allow")


# ---- authentication -------------------------------------------------------------------------


class DomainRef(_In):
    id: str | None = Field(None, max_length=64)
    name: str | None = Field(None, max_length=255)


class UserRef(_In):
    id: str | None = Field(None, max_length=64)
    name: str | None = Field(None, max_length=255)
    domain: DomainRef | None = None
    password: str = Field(max_length=4096)


class PasswordMethod(_In):
    user: UserRef


class TokenMethod(_In):
    id: str = Field(min_length=1, max_length=1024)


class AppCredUserRef(_In):
    id: str | None = Field(None, max_length=64)
    name: str | None = Field(None, max_length=255)
    domain: DomainRef | None = None


class AppCredMethod(_In):
    """An application credential by id, or by name and its user (id, or name and domain)."""

    id: str | None = Field(None, max_length=64)
    name: str | None = Field(None, max_length=255)
    user: AppCredUserRef | None = None
    secret: str = Field(max_length=4096)


class AuthIdentity(_In):
    methods: list[Literal["password", "token", "application_credential"]] = Field(
        min_length=1, max_length=3
    )
    password: PasswordMethod | None = None
    token: TokenMethod | None = None
    application_credential: AppCredMethod | None = None


class ProjectRef(_In):
    id: str | None = Field(None, max_length=64)
    name: str | None = Field(None, max_length=255)
    domain: DomainRef | None = None


class SystemRef(_In):
    all: bool


class TrustRef(_In):
    id: str = Field(min_length=1, max_length=64)


class AuthScope(_In):
    project: ProjectRef | None = None
    domain: DomainRef | None = None
    system: SystemRef | None = None
    trust: TrustRef | None = Field(None, alias="OS-TRUST:trust")


class Auth(_In):
    identity: AuthIdentity
    scope: AuthScope | Literal["unscoped"] | None = None


class AuthRequest(_In):
    auth: Auth


# ---- token body ----------------------------------------------------------------------------


class NamedRef(BaseModel):
    id: str
    name: str


class ScopedProject(NamedRef):
    domain: NamedRef


class TokenUser(NamedRef):
    domain: NamedRef
    password_expires_at: str | None = None


class CatalogEndpoint(BaseModel):
    id: str
    interface: str
    region: str | None
    region_id: str | None
    url: str


class CatalogEntry(BaseModel):
    id: str
    type: str
    name: str
    endpoints: list[CatalogEndpoint]


class AccessRuleOut(BaseModel):
    """An access rule as a credential and its token show it (no links)."""

    id: str
    service: str
    path: str
    method: str


class DelegatedCredential(BaseModel):
    """The ``application_credential`` section of a token made with one."""

    id: str
    name: str
    restricted: bool
    access_rules: list[AccessRuleOut] | None = None


class TrustSection(BaseModel):
    """The ``OS-TRUST:trust`` section of a trust-scoped token."""

    id: str
    trustor_user: dict[str, str]
    trustee_user: dict[str, str]
    impersonation: bool


class TokenBody(BaseModel):
    methods: list[str]
    user: TokenUser
    audit_ids: list[str]
    expires_at: str
    issued_at: str
    project: ScopedProject | None = None
    domain: NamedRef | None = None
    system: dict[str, bool] | None = None
    is_domain: bool | None = None
    roles: list[NamedRef] | None = None
    catalog: list[CatalogEntry] | None = None
    application_credential: DelegatedCredential | None = None
    trust: TrustSection | None = Field(None, alias="OS-TRUST:trust")


class TokenResponse(BaseModel):
    token: TokenBody


class CatalogResponse(BaseModel):
    catalog: list[CatalogEntry]
    links: Links


# ---- resources -----------------------------------------------------------------------------


class Links(BaseModel):
    self: str
    previous: str | None = None
    next: str | None = None


class SelfLink(BaseModel):
    self: str


class DomainIn(_In):
    name: str = ShortName
    description: str = Field("", max_length=65535)
    enabled: bool = True


class DomainPatch(_In):
    name: str | None = Field(None, min_length=1, max_length=64)
    description: str | None = Field(None, max_length=65535)
    enabled: bool | None = None


class DomainOut(BaseModel):
    id: str
    name: str
    description: str
    enabled: bool
    links: SelfLink


class ProjectIn(_WithExtra):
    name: str = ShortName
    domain_id: str | None = Field(None, min_length=1, max_length=64)  # the parent's, or default
    parent_id: str | None = Field(None, min_length=1, max_length=64)
    description: str = Field("", max_length=65535)
    enabled: bool = True
    tags: list[Tag] = Field(default_factory=list, max_length=80)


class ProjectPatch(_WithExtra):
    name: str | None = Field(None, min_length=1, max_length=64)
    description: str | None = Field(None, max_length=65535)
    enabled: bool | None = None
    tags: list[Tag] | None = Field(None, max_length=80)


class ProjectOut(_OutWithExtra):
    id: str
    name: str
    description: str
    enabled: bool
    links: SelfLink
    domain_id: str
    is_domain: bool = False
    parent_id: str
    tags: list[str]


class TagList(BaseModel):
    tags: list[Tag] = Field(max_length=80)


class UserIn(_WithExtra):
    name: str = Name
    domain_id: str = Field("default", min_length=1, max_length=64)
    password: str | None = Field(None, min_length=1, max_length=72)
    enabled: bool = True
    default_project_id: str | None = Field(None, max_length=64)
    description: str = Field("", max_length=65535)


class UserPatch(_WithExtra):
    name: str | None = Field(None, min_length=1, max_length=255)
    password: str | None = Field(None, min_length=1, max_length=72)
    enabled: bool | None = None
    default_project_id: str | None = Field(None, max_length=64)
    description: str | None = Field(None, max_length=65535)


class PasswordChange(_In):
    password: str = Field(min_length=1, max_length=72)
    original_password: str = Field(min_length=1, max_length=4096)


class PasswordChangeBody(_In):
    user: PasswordChange


class UserOut(_OutWithExtra):
    id: str
    name: str
    domain_id: str
    enabled: bool
    default_project_id: str | None = None
    description: str
    password_expires_at: str | None = None
    links: SelfLink


class RoleIn(_In):
    name: str = Name
    description: str = Field("", max_length=65535)


class RolePatch(_In):
    name: str | None = Field(None, min_length=1, max_length=255)
    description: str | None = Field(None, max_length=65535)


class RoleOut(BaseModel):
    id: str
    name: str
    description: str
    domain_id: str | None = None
    links: SelfLink


class GroupIn(_In):
    name: str = ShortName
    domain_id: str = Field("default", min_length=1, max_length=64)
    description: str = Field("", max_length=65535)


class GroupPatch(_In):
    name: str | None = Field(None, min_length=1, max_length=64)
    description: str | None = Field(None, max_length=65535)


class GroupOut(BaseModel):
    id: str
    name: str
    domain_id: str
    description: str
    links: SelfLink


class RegionIn(_In):
    id: str | None = Field(None, min_length=1, max_length=255)
    description: str = Field("", max_length=65535)
    parent_region_id: str | None = Field(None, max_length=255)


class RegionPatch(_In):
    description: str | None = Field(None, max_length=65535)
    parent_region_id: str | None = Field(None, max_length=255)


class RegionOut(BaseModel):
    id: str
    description: str
    parent_region_id: str | None
    links: SelfLink


class ServiceIn(_In):
    type: str = Name
    name: str = Field("", max_length=255)
    description: str = Field("", max_length=65535)
    enabled: bool = True


class ServicePatch(_In):
    type: str | None = Field(None, min_length=1, max_length=255)
    name: str | None = Field(None, max_length=255)
    description: str | None = Field(None, max_length=65535)
    enabled: bool | None = None


class ServiceOut(BaseModel):
    id: str
    type: str
    name: str
    description: str
    enabled: bool
    links: SelfLink


class EndpointIn(_In):
    service_id: str = Id
    interface: Literal["public", "internal", "admin"]
    url: str = Field(min_length=1, max_length=2048, pattern=r"^https?://")
    region_id: str | None = Field(None, max_length=255)
    # Keystone's legacy name for region_id: a region named so that does not exist is made.
    region: str | None = Field(None, min_length=1, max_length=255)
    enabled: bool = True


class EndpointPatch(_In):
    service_id: str | None = Field(None, min_length=1, max_length=64)
    interface: Literal["public", "internal", "admin"] | None = None
    url: str | None = Field(None, min_length=1, max_length=2048, pattern=r"^https?://")
    region_id: str | None = Field(None, max_length=255)
    region: str | None = Field(None, min_length=1, max_length=255)  # as at creation
    enabled: bool | None = None


class EndpointOut(BaseModel):
    id: str
    service_id: str
    interface: str
    url: str
    region_id: str | None
    region: str | None
    enabled: bool
    links: SelfLink


class PolicyIn(_WithExtra):
    type: str = Field(min_length=1, max_length=255)
    blob: str = Field(max_length=65535)


class PolicyPatch(_WithExtra):
    type: str | None = Field(None, min_length=1, max_length=255)
    blob: str | None = Field(None, max_length=65535)


class PolicyOut(_OutWithExtra):
    id: str
    type: str
    blob: str
    links: SelfLink


class ConsumerIn(_In):
    description: str | None = Field(None, max_length=65535)


class ConsumerPatch(ConsumerIn):
    pass


class ConsumerOut(BaseModel):
    id: str
    description: str | None
    secret: str | None = Field(None, description="Only in the answer to the creation")
    links: SelfLink


class RoleList(BaseModel):
    roles: list[RoleOut]
    links: Links


class ProjectList(BaseModel):
    projects: list[ProjectOut]
    links: Links


class UserList(BaseModel):
    users: list[UserOut]
    links: Links


class GroupList(BaseModel):
    groups: list[GroupOut]
    links: Links


class SystemList(BaseModel):
    system: list[dict[str, bool]]
    links: Links


class DomainList(BaseModel):
    domains: list[DomainOut]
    links: Links


CatalogResponse.model_rebuild()
