"""The security group of a network at each site: ``cascade-{network id}``, which Cascade's
ports of that network carry at their site. It admits everything from the network's own CIDR
(its VMs at every site: across sites they arrive with their own addresses) and from the
CIDRs of the networks a router joins it with, and lets everything out (Neutron's default
egress rules, which a new group gets). Anything else is refused at the VM's own port, by the
site's firewall. Kept exactly so by every sync of the network and by router changes.
"""

from __future__ import annotations

from typing import Any

from openstack.connection import Connection
from sqlalchemy import select

from cascade.db.network_models import Network, RouterNetwork
from cascade.engine.context import context


def group_name(network_id: str) -> str:
    return f"cascade-{network_id}"


def admitted(network: Network, leaving_router: str | None = None) -> set[str]:
    """The CIDRs a network's ports admit: its own and those routed to it (but through
    ``leaving_router``, which is being deleted)."""
    with context().db.session() as session:
        routers = select(RouterNetwork.router_id).where(RouterNetwork.network_id == network.id)
        if leaving_router is not None:
            routers = routers.where(RouterNetwork.router_id != leaving_router)
        cidrs = session.scalars(
            select(Network.cidr)
            .join(RouterNetwork, RouterNetwork.network_id == Network.id)
            .where(RouterNetwork.router_id.in_(routers))
        )
        return {network.cidr, *cidrs}


def ensure_group(c: Connection, network: Network, cidrs: set[str]) -> str:
    """The network's group at the site, admitting exactly ``cidrs``; returns its id."""
    name = group_name(network.id)
    group: Any = next(iter(c.network.security_groups(name=name)), None)
    if group is None:
        group = c.network.create_security_group(
            name=name, description=f"Cascade network {network.name}"
        )
    have = {
        rule.remote_ip_prefix: rule
        for rule in c.network.security_group_rules(security_group_id=group.id, direction="ingress")
    }
    for cidr, rule in have.items():
        if cidr not in cidrs:
            c.network.delete_security_group_rule(rule, ignore_missing=True)
    for cidr in cidrs - set(have):
        c.network.create_security_group_rule(
            security_group_id=group.id, direction="ingress", ethertype="IPv4", remote_ip_prefix=cidr
        )
    return str(group.id)


def remove_group(c: Connection, network: Network) -> None:
    for group in c.network.security_groups(name=group_name(network.id)):
        c.network.delete_security_group(group, ignore_missing=True)
