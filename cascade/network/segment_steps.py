"""The worker side of networks: make or remove the network at every site it spans, one child
workflow per site in parallel; each site's outcome lands in its segment row and in the
operation. A network at a site is Cascade's when its description carries Cascade's id
(``cascade_id=...``): creation looks for it first, so a re-run step finds what it made.

At each site the network is a VXLAN network on Cascade's VNI (provider attributes: the site
account must be allowed to set them, an admin's) with one subnet of Cascade's CIDR, DHCP off
(Cascade gives the addresses) and the CIDR's first address as its gateway.
"""

from __future__ import annotations

from typing import Any

from openstack.connection import Connection
from sqlalchemy import delete, select, update

from cascade.db.models import Site
from cascade.db.network_models import Network, NetworkSegment
from cascade.engine.context import context
from cascade.engine.workflows import (
    Job,
    StepRun,
    at_sites,
    handler,
    require_all,
    step,
    step_function,
)
from cascade.errors import Conflict, present
from cascade.network.addresses import gateway
from cascade.sites.driver import SiteCallFailed

TAG = "cascade_id="


def _network(network_id: str) -> Network:
    with context().db.session() as session:
        return present(session.get(Network, network_id), f"network {network_id}")


def set_segment(network_id: str, site_id: str, **values: Any) -> None:
    with context().db.session() as session:
        session.execute(
            update(NetworkSegment)
            .where(NetworkSegment.network_id == network_id, NetworkSegment.site_id == site_id)
            .values(**values)
        )


def site_network(c: Connection, network: Network) -> Any:
    """Cascade's network at the site (by the id in its description), or None."""
    found = c.network.networks(name=network.name)
    return next((n for n in found if n.description == TAG + network.id), None)


def _ensure(c: Connection, network: Network) -> tuple[str, str]:
    found = site_network(c, network)
    if found is None:
        found = c.network.create_network(
            name=network.name,
            description=TAG + network.id,
            provider_network_type="vxlan",
            provider_segmentation_id=network.vni,
        )
    elif found.provider_segmentation_id not in (None, network.vni):
        raise Conflict(
            f"the site's network {found.id} is on VNI {found.provider_segmentation_id}, "
            f"not {network.vni}"
        )
    subnet = next(iter(c.network.subnets(network_id=found.id, cidr=network.cidr)), None)
    if subnet is None:
        subnet = c.network.create_subnet(
            network_id=found.id,
            name=network.name,
            ip_version=4,
            cidr=network.cidr,
            gateway_ip=gateway(network.cidr),
            is_dhcp_enabled=False,
        )
    return str(found.id), str(subnet.id)


@step_function("network.ensure")
def ensure_segment(_run: StepRun, network_id: str, site_id: str) -> str:
    network = _network(network_id)
    driver = context().driver(site_id)
    try:
        network_at_site, subnet = driver.call(
            f"create network {network.name} (VNI {network.vni})", lambda c: _ensure(c, network)
        )
    except SiteCallFailed as failure:
        set_segment(network_id, site_id, status="error", error=failure.message)
        raise
    set_segment(
        network_id,
        site_id,
        status="present",
        error=None,
        site_network_id=network_at_site,
        site_subnet_id=subnet,
    )
    return network_at_site


@step_function("network.remove")
def remove_segment(_run: StepRun, network_id: str, site_id: str) -> None:
    network = _network(network_id)
    set_segment(network_id, site_id, status="deleting", error=None)
    driver = context().driver(site_id)

    def remove(c: Connection) -> None:
        found = site_network(c, network)
        if found is not None:
            c.network.delete_network(found.id, ignore_missing=True)

    try:
        driver.call(f"delete network {network.name}", remove)
    except SiteCallFailed as failure:
        set_segment(network_id, site_id, status="error", error=failure.message)
        raise
    with context().db.session() as session:
        session.execute(
            delete(NetworkSegment).where(
                NetworkSegment.network_id == network_id, NetworkSegment.site_id == site_id
            )
        )


@step_function("network.segments")
def segments(_run: StepRun, network_id: str) -> list[tuple[str, str]]:
    """(site id, site name) of every segment of the network."""
    with context().db.session() as session:
        rows = session.execute(
            select(Site.id, Site.name)
            .join(NetworkSegment, NetworkSegment.site_id == Site.id)
            .where(NetworkSegment.network_id == network_id)
            .order_by(Site.name)
        ).all()
        return [(row[0], row[1]) for row in rows]


def _everywhere(job: Job, verb: str, function_name: str) -> dict[str, Any]:
    sites = step(job, "find the sites", None, "network.segments", job.resource_id)
    outcomes = at_sites(job, sites, verb, function_name, job.resource_id)
    require_all(outcomes)
    return {"sites": sorted(outcomes)}


@handler("network.create")
@handler("network.sync")
def create(job: Job) -> dict[str, Any]:
    return _everywhere(job, "create", "network.ensure")


@handler("network.delete")
def remove(job: Job) -> dict[str, Any]:
    return _everywhere(job, "delete", "network.remove")
