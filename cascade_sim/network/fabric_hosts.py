"""The region's compute hosts as the fabric's agents see them: which dataplane each programs
(``RegionConfig.dataplane``: memory, or Linux in a host namespace ``cs-{site}-{i}``, plugged
into ``RegionConfig.underlay`` when given), how it is made and released, the checks that
refuse a dataplane the region cannot run, and how ``/sim/v1/dataplane`` shows a host and
its ports.

Imports ``cascade.fabric``'s dataplanes, ``cascade.errors``, the region and ``underlay``; of
this package nothing (``fabric`` uses it, below ``store``). Making and releasing a Linux
host runs netlink: call them off the event loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cascade.errors import BadRequest, Unavailable
from cascade.fabric.dataplane.base import Dataplane, LocalPort
from cascade.fabric.dataplane.memory import MemoryDataplane
from cascade_sim.network.fabric_ports import Json
from cascade_sim.region import Host, Region, RegionConfig
from cascade_sim.underlay import Underlay

DATAPLANES = ("memory", "linux")


def check_config(config: RegionConfig) -> None:
    """Refuse, with one line, a dataplane the region cannot run: an unknown kind, an underlay
    without the Linux dataplane, Linux without root, an underlay bridge that is not there."""
    if config.dataplane not in DATAPLANES:
        raise BadRequest(f"--dataplane takes memory or linux, got {config.dataplane!r}")
    if config.underlay is not None and config.dataplane != "linux":
        raise BadRequest("--underlay needs --dataplane linux")
    if config.dataplane == "linux" and os.geteuid() != 0:
        raise Unavailable("--dataplane linux needs root: it creates network namespaces")
    if config.underlay is not None:
        Underlay.parse(config.underlay).check()


def host_namespace(site: Region, index: int) -> str:
    """The network namespace of the region's ``index``-th host (from 1) on the Linux dataplane."""
    return f"cs-{site.config.name}-{index}"


@dataclass(frozen=True)
class HostPlane:
    """One compute host's dataplane, and its namespace on the Linux one."""

    host: Host
    dataplane: Dataplane
    namespace: str | None = None


def open_plane(site: Region, index: int, host: Host) -> HostPlane:
    """The dataplane of the ``index``-th host (from 1): on Linux its namespace, created if
    missing, and its underlay pair."""
    if site.config.dataplane == "memory":
        return HostPlane(host, MemoryDataplane(host.tunnel_ip))
    from cascade.fabric.dataplane.linux import LinuxDataplane

    namespace = host_namespace(site, index)
    plane = HostPlane(host, LinuxDataplane(namespace, host.tunnel_ip, create=True), namespace)
    if site.config.underlay is not None:
        try:
            Underlay.parse(site.config.underlay).attach(namespace, host.tunnel_ip)
        except BaseException:
            close_plane(site, plane)
            raise
    return plane


def close_plane(site: Region, plane: HostPlane) -> None:
    """Remove the host's underlay pair, then shut its dataplane down (a namespace it
    created goes with its VM namespaces)."""
    try:
        if plane.namespace is not None and site.config.underlay is not None:
            Underlay.parse(site.config.underlay).detach(plane.namespace)
    finally:
        plane.dataplane.shutdown()


def host_view(plane: HostPlane, tracked: Json) -> Json:
    """A host with its convergence (``tracked``: the fabric's tracking of it) and, per
    network its dataplane is on, the neighbour table it holds."""
    dataplane = plane.dataplane
    return {
        "name": plane.host.name,
        "vtep": plane.host.tunnel_ip,
        "namespace": plane.namespace,
        "converged": bool(tracked.get("converged")),
        "revision": tracked.get("revision"),
        "applied_revision": tracked.get("applied_revision"),
        "networks": [
            {"id": network_id, "vni": vni, "neighbours": _neighbours(dataplane, network_id)}
            for network_id, vni in sorted(dataplane.networks().items())
        ],
    }


def port_views(plane: HostPlane) -> list[Json]:
    """The ports the host's dataplane holds, each with its VM namespace on Linux (none for a
    router's interface, whose router it names)."""
    vm = getattr(plane.dataplane, "vm_namespace", None)  # the Linux dataplane's
    return [
        {
            "id": port.port_id,
            "network_id": port.network_id,
            "host": plane.host.name,
            "mac": port.mac,
            "ip": port.ip.partition("/")[0],
            "vm_namespace": vm(port.port_id) if vm and port.router is None else None,
            "router": port.router,
        }
        for port in _ports(plane.dataplane)
    ]


def _ports(dataplane: Dataplane) -> list[LocalPort]:
    return sorted(dataplane.ports().values(), key=lambda port: port.port_id)


def _neighbours(dataplane: Dataplane, network_id: str) -> list[Json]:
    table = dataplane.neighbours(network_id)
    return [
        {"port_id": port_id, "mac": n.mac, "ip": n.ip, "vtep": n.vtep}
        for port_id, n in sorted(table.items())
    ]
