"""JSON shapes of ``/v1/servers``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cascade.engine.schemas import OperationOut
from cascade.network.ports import PortIn, PortOut

Name = Field(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f]+$")


class ServerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Name
    site: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="Site name or id; unset: the placement rule picks the site of the "
        "project's with the fewest servers",
    )
    flavor: str = Field(min_length=1, max_length=255, description="Flavor name or id at the site")
    image: str = Field(min_length=1, max_length=255, description="Image name or id at the site")
    network: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="A network of the site (name or id there); not with port",
    )
    boot_volume_gb: int | None = Field(
        None,
        ge=1,
        le=16384,
        description="Boot from a volume of this size (GiB) the site makes from the image, "
        "deleted with the server; unset: boot from the image",
    )
    port: PortIn | None = Field(
        None,
        description="A port on a network of /v1/networks that spans sites: Cascade gives the "
        "address; the server's site must be one the network spans (unset site: the one of "
        "them with the fewest servers). Not with network.",
    )

    @model_validator(mode="after")
    def _one_network(self) -> ServerIn:
        if self.network is not None and self.port is not None:
            raise ValueError("give network (a site's network) or port (a Cascade network)")
        return self


class BlockDeviceOut(BaseModel):
    source: Literal["image", "volume"] = Field(
        description="image: a new volume the site makes from the server's image; volume: a "
        "volume of the site"
    )
    volume: str | None = Field(None, description="The site's volume id (source volume)")
    size_gb: int | None = Field(None, description="The new volume's size (source image)")
    boot_index: int | None = Field(None, description="0 for the boot disk; none for data")


class ServerOut(BaseModel):
    id: str
    name: str
    project_id: str
    site: str
    status: str = Field(
        description="BUILD, ACTIVE, REBOOT, STOPPING, SHUTOFF, STARTING, DELETING, ERROR, "
        "or MISSING (gone from its site behind Cascade's back)"
    )
    flavor: str
    image: str
    network: str | None
    port: PortOut | None = Field(description="Its port on a Cascade network, if it has one")
    block_devices: list[BlockDeviceOut] | None = Field(
        description="What it boots from and has attached at boot, when not only its image"
    )
    task: str | None = Field(description="The operation now running on this server")
    site_server_id: str | None = Field(description="The server's id at its site")
    error: str | None = Field(
        description="Why the server is in ERROR: the error of the operation that failed (a "
        "create that never reached its site keeps this; convergence leaves such a server alone)"
    )
    created_at: datetime
    updated_at: datetime


class ServerEnvelope(BaseModel):
    server: ServerOut


class ServerList(BaseModel):
    servers: list[ServerOut]


class ServerAccepted(BaseModel):
    server: ServerOut
    operation: OperationOut


ServerAction = Literal["reboot", "stop", "start"]
