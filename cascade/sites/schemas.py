"""Request and response bodies of ``/v1/sites``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SITE_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"


class SiteCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    username: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=1024)
    project_name: str = Field(min_length=1, max_length=255)
    user_domain_name: str = Field("Default", min_length=1, max_length=255)


class SiteIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(pattern=SITE_NAME, description="Lower-case letters, digits and dashes.")
    region_name: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._-]+$")
    identity_url: str = Field(min_length=8, max_length=2048, pattern=r"^https?://[^\s]+$")
    credentials: SiteCredentials
    identity: Literal["own", "replica"] = Field(
        "own",
        description="own: the site keeps its own identity (a region with its own Keystone). "
        "replica: Cascade fills the site's identity copy at registration, so the site validates "
        "Cascade's tokens locally. The credentials authorise that copy at the site, and are valid "
        "afterwards only if Cascade has the same user.",
    )


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
