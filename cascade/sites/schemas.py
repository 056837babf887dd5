"""Request and response bodies of ``/v1/sites``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

SITE_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"


class SiteCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    username: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=1024)
    project_name: str = Field(min_length=1, max_length=255)
    user_domain_name: str = Field("Default", min_length=1, max_length=255)


URL = r"^https?://[^\s]+$"


class SiteIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(pattern=SITE_NAME, description="Lower-case letters, digits and dashes.")
    region_name: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._-]+$")
    identity_url: str = Field(
        min_length=8,
        max_length=2048,
        pattern=URL,
        description="The site's Keystone v3 URL (e.g. http://site:5000/v3).",
    )
    credentials: SiteCredentials
    identity: Literal["own", "replica"] = Field(
        "own",
        description="own: the site keeps its own identity (a region with its own Keystone). "
        "replica: Cascade fills the site's identity copy at registration, so the site validates "
        "Cascade's tokens locally. The credentials authorise that copy at the site, and are valid "
        "afterwards only if Cascade has the same user.",
    )


class SitePatch(BaseModel):
    """New credentials and/or identity URL for a site, checked at the site before they are
    stored."""

    model_config = ConfigDict(extra="forbid", strict=True)
    identity_url: str | None = Field(
        None,
        min_length=8,
        max_length=2048,
        pattern=URL,
        description="The site's Keystone v3 URL, if it moved.",
    )
    credentials: SiteCredentials | None = Field(None, description="The whole credential set.")

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        if self.identity_url is None and self.credentials is None:
            raise ValueError("give identity_url, credentials or both")
        return self


class SiteOut(BaseModel):
    id: str
    name: str
    region_name: str
    identity_url: str
    username: str
    user_domain_name: str
    project_name: str
    project_id: str = Field(description="The Cascade project that owns this site.")
    identity: str = Field(description="own or replica")
    created_at: datetime


class SiteEnvelope(BaseModel):
    site: SiteOut


class SiteList(BaseModel):
    sites: list[SiteOut]


class ForcedRemoval(BaseModel):
    """What a forced delete made Cascade forget."""

    site: str
    reason: str = Field(description="Why the site could not be used.")
    servers: list[str] = Field(description="Ids of Cascade's servers there, now ERROR.")
    keypair_copies: int = Field(description="Keypair copies there Cascade forgot.")
    message: str
