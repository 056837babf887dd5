"""Request and response bodies of ``/v1/fabric``.

Names and ids are single subject tokens (``addressing.validate_token``), narrowed here to
ASCII letters, digits, ``_``, ``:`` and ``-``; addresses, the MAC and the CIDR are checked by
``GoalStore``, whose messages say what was wrong.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = r"^[A-Za-z0-9_:-]+$"
NAME_HELP = "Letters, digits, '_', ':' and '-'."


class HostIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1, max_length=255, pattern=NAME_PATTERN, description=NAME_HELP)
    tunnel_ip: str = Field(
        min_length=1, max_length=64, description="The host's tunnel endpoint (underlay address)."
    )


class HostOut(BaseModel):
    name: str
    tunnel_ip: str
    revision: int = Field(description="The host's goal revision.")
    applied_revision: int = Field(description="The host revision its agent acknowledged.")
    networks_behind: int = Field(description="Networks whose table the agent has not caught up.")
    converged: bool = Field(
        description="The agent applied the host's goal revision and every network's table."
    )
    acked_at: datetime | None = Field(description="The agent's last acknowledgement.")
    enforces_rules: bool = Field(
        description="The agent's last acknowledgement said its dataplane enforces security "
        "rules (the Linux dataplane does, the in-memory one does not)."
    )
    ports_with_rules: int = Field(description="The host's ports that carry security rules.")
    rules_enforced: bool = Field(
        description="The security rules of the host's ports are in force: it has none, or its "
        "dataplane enforces them and it converged. False: converged or not, its rules are not "
        "applied."
    )


class HostEnvelope(BaseModel):
    host: HostOut


class HostList(BaseModel):
    hosts: list[HostOut]
    converged: int = Field(description="Converged hosts, among all of them.")
    lagging: int = Field(description="Hosts behind their goal, among all of them.")
    rules_not_enforced: int = Field(
        description="Hosts, among all of them, holding ports with security rules that their "
        "dataplane does not enforce: not converged for rules."
    )


class NetworkIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN, description=NAME_HELP)
    vni: int = Field(ge=1, le=2**24 - 1, description="VXLAN network identifier.")
    cidr: str = Field(min_length=1, max_length=64, description="e.g. 10.1.0.0/16")


class NetworkOut(BaseModel):
    id: str
    vni: int
    cidr: str
    revision: int


class NetworkEnvelope(BaseModel):
    network: NetworkOut


class SecurityRule(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    direction: Literal["ingress", "egress"]
    protocol: Literal["tcp", "udp", "icmp", "any"]
    port_min: int | None = Field(None, ge=0, le=65535)
    port_max: int | None = Field(None, ge=0, le=65535)
    remote_ip_prefix: str | None = Field(None, max_length=64, description="e.g. 0.0.0.0/0")

    @field_validator("remote_ip_prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP prefix") from None

    @model_validator(mode="after")
    def _range(self) -> SecurityRule:
        if (
            self.port_min is not None
            and self.port_max is not None
            and self.port_min > self.port_max
        ):
            raise ValueError(f"port_min {self.port_min} is above port_max {self.port_max}")
        return self

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class PortIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN, description=NAME_HELP)
    network_id: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN)
    host: str = Field(min_length=1, max_length=255, pattern=NAME_PATTERN)
    mac: str = Field(
        min_length=1, max_length=17, description="Six lower-case hex pairs: 02:00:00:00:00:01."
    )
    ip: str = Field(
        min_length=1, max_length=64, description="An address within the network's CIDR."
    )
    security_rules: list[SecurityRule] = Field(default_factory=list, max_length=1000)


class PortOut(BaseModel):
    id: str
    network_id: str
    host: str
    mac: str
    ip: str
    security_rules: list[SecurityRule]


class PortRemoved(BaseModel):
    network_revision: int = Field(description="The network revision the change made.")
    host_revision: int = Field(description="The host revision the change made.")
    pending_hosts: int = Field(
        description="Affected hosts that had not applied the change when answered (0: converged)."
    )


class PortAdded(PortRemoved):
    port: PortOut
    rules_enforced: bool = Field(
        description="The port's security rules are in force at its host (true when it has "
        "none). Acknowledged is not enforced: false while its host's dataplane cannot enforce "
        "rules, even with pending_hosts 0."
    )
    hosts_not_enforcing_rules: int = Field(
        description="Hosts of the change holding this port's rules without enforcing them."
    )
