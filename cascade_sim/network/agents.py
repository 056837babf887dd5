"""``/v2.0/agents``: the region's L2 agents as Neutron lists them, read-only and for admins.

One "Open vSwitch agent" per simulated compute host, whose ``configurations`` carry the
host's tunnel endpoint (``tunneling_ip``): how a client learns the VTEP of the host a port is
bound to, as it would on a real region. The agents are derived from ``site.hosts``, never
stored; ``availability_zone`` is None as Neutron gives it for L2 agents (only DHCP and L3
agents have one). May import what the other network modules do.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from cascade.api.keystone import Caller
from cascade.identity import AuthContext
from cascade_sim.common import RegionDep
from cascade_sim.network.checks import boolean
from cascade_sim.network.collection import Query, fields, grouped, select
from cascade_sim.network.errors import bad, error, forbidden
from cascade_sim.network.kinds import PREFIX, Json
from cascade_sim.region import Host, Region

AGENT_TYPE = "Open vSwitch agent"
BINARY = "neutron-openvswitch-agent"
STARTED = "2026-01-01 00:00:00"  # Neutron's agent timestamps have no T and no zone


def _agent(site: Region, host: Host) -> Json:
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"cascade-sim:{site.config.name}:{host.name}")),
        "agent_type": AGENT_TYPE,
        "binary": BINARY,
        "host": host.name,
        "topic": "N/A",
        "alive": True,
        "admin_state_up": True,
        "availability_zone": None,
        "description": None,
        "created_at": STARTED,
        "started_at": STARTED,
        "heartbeat_timestamp": STARTED,
        "resources_synced": None,
        "configurations": {
            "tunneling_ip": host.tunnel_ip,
            "tunnel_types": ["vxlan"],
            "l2_population": True,
            "bridge_mappings": {},
        },
    }


def _agents(site: Region, caller: AuthContext) -> list[Json]:
    if not caller.is_admin:
        raise forbidden("rule:get_agent")
    return [_agent(site, host) for host in site.hosts]


def _matches(agent: Json, key: str, wanted: list[str]) -> bool:
    if key not in agent or isinstance(agent[key], dict | list):
        raise bad(f"'{key}' is not a valid attribute for filtering agents")
    value = agent[key]
    if isinstance(value, bool):
        return any(value == boolean(key, text) for text in wanted)
    return ("" if value is None else str(value)) in wanted


def _filtered(agents: list[Json], query: Query) -> list[Json]:
    filters = {key: values for key, values in query.items() if key != "fields"}
    return [a for a in agents if all(_matches(a, k, v) for k, v in filters.items())]


router = APIRouter(prefix=f"{PREFIX}/agents", tags=["network"])


@router.get("", summary="List the L2 agents (admin)")
def list_agents(request: Request, caller: Caller, site: RegionDep) -> Json:
    query = grouped(request)
    names = fields(query)
    return {"agents": [select(a, names) for a in _filtered(_agents(site, caller), query)]}


@router.get("/{agent_id}", summary="Show an L2 agent (admin)")
def show_agent(agent_id: str, request: Request, caller: Caller, site: RegionDep) -> Json:
    for agent in _agents(site, caller):
        if agent["id"] == agent_id:
            return {"agent": select(agent, fields(grouped(request)))}
    raise error(404, "AgentNotFound", f"Agent {agent_id} could not be found.")
