"""Request and response bodies of ``/v1/networks``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from cascade.engine.schemas import OperationOut


class NetworkIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$")
    cidr: str = Field(
        min_length=9, max_length=18, description="IPv4, /16 to /29, e.g. 10.10.0.0/24"
    )
    sites: list[str] = Field(
        min_length=1, max_length=64, description="Names or ids of the sites it spans."
    )


class SegmentOut(BaseModel):
    status: str = Field(description="pending, present, error or deleting")
    site_network_id: str | None = Field(description="The network's id at the site.")
    error: str | None


class NetworkOut(BaseModel):
    id: str
    name: str
    project_id: str
    cidr: str
    gateway_ip: str
    vni: int = Field(description="The VXLAN segment it is at every site, allocated by Cascade.")
    status: str = Field(description="BUILD, ACTIVE, ERROR (see error and sites) or DELETING")
    task: str | None = Field(description="The operation running on it, if any.")
    error: str | None
    ports: int = Field(description="Addresses given out on it (servers' ports).")
    sites: dict[str, SegmentOut] = Field(description="Per site name: where its segment stands.")
    created_at: datetime


class NetworkEnvelope(BaseModel):
    network: NetworkOut


class NetworkList(BaseModel):
    networks: list[NetworkOut]


class NetworkAccepted(BaseModel):
    network: NetworkOut
    operation: OperationOut


class ServiceIPIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    network: str = Field(min_length=1, max_length=255, description="Network name or id.")
    holder: str = Field(
        min_length=1, max_length=64, description="The server (id) that takes the address first."
    )
    address: str | None = Field(
        None, max_length=64, description="An address of the network; unset: the lowest free one."
    )


class ServiceIPMove(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    to: str = Field(min_length=1, max_length=64, description="The server (id) that takes it.")


class ServiceIPOut(BaseModel):
    id: str
    project_id: str
    network_id: str
    address: str
    holder: str | None = Field(description="The server holding it.")
    holder_site: str = Field(description="The site of the server holding it.")
    status: str = Field(description="BUILD, ACTIVE, MOVING, SYNCING, ERROR or DELETING")
    task: str | None
    error: str | None
    moved_at: datetime | None = Field(description="When its last move finished at the new site.")
    switchover_s: float | None = Field(
        description="Its last move: seconds from the operation's start until the new holder's "
        "site had it (the control plane's part of the switchover)."
    )
    created_at: datetime


class ServiceIPEnvelope(BaseModel):
    service_ip: ServiceIPOut


class ServiceIPList(BaseModel):
    service_ips: list[ServiceIPOut]


class ServiceIPAccepted(BaseModel):
    service_ip: ServiceIPOut
    operation: OperationOut


class RouterIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$")
    networks: list[str] = Field(
        min_length=2, max_length=32, description="Networks (names or ids) it routes between."
    )


class RouterSiteOut(BaseModel):
    transit_ip: str = Field(description="The site router's address on the transit network.")
    routes: list[str] = Field(description="CIDR via next hop, for networks not at this site.")


class RouterOut(BaseModel):
    id: str
    name: str
    project_id: str
    networks: list[str] = Field(description="Names of the networks it joins.")
    transit_network: str = Field(description="The network joining its site routers.")
    status: str = Field(description="BUILD, ACTIVE, ERROR or DELETING")
    task: str | None
    error: str | None
    sites: dict[str, RouterSiteOut] = Field(description="Per site name: its site router.")
    created_at: datetime


class RouterEnvelope(BaseModel):
    router: RouterOut


class RouterList(BaseModel):
    routers: list[RouterOut]


class RouterAccepted(BaseModel):
    router: RouterOut
    operation: OperationOut
