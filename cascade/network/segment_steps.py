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
from cascade.engine.context import EngineContext, context
from cascade.engine.convergence import checker, repair
from cascade.engine.workflows import (
    Job,
    StepRun,
    at_sites,
    handler,
    require_all,
    step,
    step_function,
)
from cascade.errors import Conflict
from cascade.network.addresses import gateway
from cascade.network.groups import admitted, ensure_group, remove_group
from cascade.network.networks import NetworkService
from cascade.network.port_steps import (
    Segment,
    moved,
    ports_at,
    reconcile_remote_ports,
    record_location,
    remote_drift,
    remote_ports_wanted,
)
from cascade.sites.driver import SiteCallFailed
from cascade.sites.named import sites_named_by

TAG = "cascade_id="


def _network(network_id: str) -> Network:
    return context().row(Network, network_id, f"network {network_id}")


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
    """The network at the site, with a remote port for each of its ports held elsewhere
    (none on create; after a site was down, or ports drifted, the ones missing)."""
    network = _network(network_id)
    driver = context().driver(site_id)
    wanted = remote_ports_wanted(network_id, site_id)

    cidrs = admitted(network)

    def ensure(c: Connection) -> tuple[str, str]:
        network_at_site, subnet = _ensure(c, network)
        ensure_group(c, network, cidrs)
        reconcile_remote_ports(c, Segment(network_at_site, subnet), wanted)
        return network_at_site, subnet

    try:
        network_at_site, subnet = driver.call(
            f"create network {network.name} (VNI {network.vni})", ensure
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
        remove_group(c, network)

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
    return segment_sites(network_id)


def segment_sites(network_id: str) -> list[tuple[str, str]]:
    """(site id, site name) of every segment of the network."""
    with context().db.session() as session:
        return sites_named_by(
            session, NetworkSegment.site_id, NetworkSegment.network_id == network_id
        )


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


def _drift_at(
    engine: EngineContext, site: Site, network: Network, segment: NetworkSegment
) -> list[str]:
    """What is wrong with the network at the site (asked of the site first, so an unreachable
    site fails the check rather than being synced in vain). A port of the site that its site
    bound to another host since (a migration) is located again here, so that the sync moves
    its remote ports at the other sites to its new VTEP."""
    wanted = remote_ports_wanted(network.id, site.id)
    local = ports_at(network.id, site.id)

    def look(c: Connection) -> tuple[list[str], list[tuple[str, str, str]]]:
        found = site_network(c, network)
        if found is None:
            gone = [] if segment.status != "present" else ["the network is gone from the site"]
            return gone, []
        segment_at = Segment(str(found.id), segment.site_subnet_id or "")
        return remote_drift(c, segment_at, wanted), moved(c, segment_at, local)

    drift, relocated = engine.driver(site.id).call(f"check network {network.name}", look)
    for port_id, host, vtep in relocated:
        record_location(port_id, host, vtep)
        drift.append(f"port {port_id} moved to host {host} (VTEP {vtep})")
    if segment.status != "present":
        drift.insert(0, f"its segment is {segment.status}: {segment.error}")
    return drift


@checker
def check_networks(engine: EngineContext, site: Site) -> tuple[int, list[dict[str, Any]]]:
    """Compare each network at the site with Cascade's: a segment that is not present (the
    site was down at create), a network gone from the site, or remote ports missing, stale or
    extra are repaired by a ``network.sync`` operation. Networks with an operation running are
    left to it."""
    with engine.db.session() as session:
        rows = session.execute(
            select(NetworkSegment, Network)
            .join(Network, Network.id == NetworkSegment.network_id)
            .where(NetworkSegment.site_id == site.id, Network.task_operation_id.is_(None))
        ).all()
    repairs = []
    for segment, network in rows:
        drift = _drift_at(engine, site, network, segment)
        if not drift:
            continue
        try:
            operation = NetworkService(engine.db, engine.services.operations).act(
                network.id, "sync", network.project_id, None
            )
        except Conflict:  # an operation took the network meanwhile: it is that one's
            continue
        repairs.append(
            repair(
                "network",
                network.id,
                site.name,
                "; ".join(drift),
                f"syncing: operation {operation.id}",
            )
        )
    return len(rows), repairs
