"""The networks part of ``cascade demo``: one network stretched over both sites, a VM at each
and a client, the remote ports each site holds for the other's VM, a ping across sites, and a
service IP moved from the master at site A to the standby at site B while the client pings it
every 10 ms. With root the sites run the Linux dataplane (real namespaces, VXLAN over one
underlay) and the pings are real; without, the sites' in-memory dataplanes hold the same
state and the demo shows it, without packets."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table

from cascade.cli import netlab
from cascade.cli.clients import SessionClient
from cascade.cli.embedded import EmbeddedSite
from cascade.cli.probes import Pinger, answering
from cascade.sites.driver import SiteDriver

console = Console()
NETWORK, CIDR, SERVICE_IP = "vnf-net", "10.20.0.0/24", "10.20.0.100"


def _remote_ports(site: EmbeddedSite) -> list[Any]:
    return SiteDriver(site.access()).call(
        "list remote ports", lambda c: list(c.network.ports(device_owner="compute:shadow"))
    )


def stretch(api: SessionClient, sites: list[EmbeddedSite], image: str) -> dict[str, Any]:
    """The network over both sites and three VMs on it: its view and the VMs by role."""
    names = [site.site_name for site in sites]
    network = netlab.stretched_network(api, NETWORK, CIDR, names)
    console.print(
        f"network {NETWORK} {CIDR}: VNI {network['vni']} at "
        + ", ".join(f"{name} ({s['status']})" for name, s in network["sites"].items())
    )
    roles = (("master", names[0]), ("client", names[0]), ("standby", names[1]))
    vms = {role: netlab.boot(api, f"vnf-{role}", site, NETWORK, image) for role, site in roles}
    table = Table(
        "VM", "site", "address", "MAC", "host", "VTEP", title="VMs on the stretched network"
    )
    for role, vm in vms.items():
        port = vm["port"]
        table.add_row(role, vm["site"], port["ip"], port["mac"], port["host"], port["vtep"])
    console.print(table)
    for site in sites:
        shadows = _remote_ports(site)
        console.print(
            f"{site.site_name} holds remote ports for "
            + ", ".join(
                f"{p.fixed_ips[0]['ip_address']} at {p.binding_profile['tunnel_ip']}"
                for p in shadows
            )
        )
    return vms


def ping_across(sites: list[EmbeddedSite], vms: dict[str, Any]) -> None:
    client_ns = netlab.vm_namespace(sites[0], vms["client"]["port"]["site_port_id"])
    target = vms["standby"]["port"]["ip"]
    answering(client_ns, target, "the standby across the sites")
    console.print(
        f"ping from the client at {sites[0].site_name} to {target} at {sites[1].site_name}: "
        "answered"
    )


def move_service_ip(
    api: SessionClient, sites: list[EmbeddedSite], vms: dict[str, Any], packets: bool
) -> None:
    service_ip = netlab.take_service_ip(api, NETWORK, vms["master"]["id"], SERVICE_IP)
    console.print(f"service IP {SERVICE_IP} held by the master at {vms['master']['site']}")
    pinger = None
    if packets:
        client_ns = netlab.vm_namespace(sites[0], vms["client"]["port"]["site_port_id"])
        answering(client_ns, SERVICE_IP, "the service IP's first holder")
        pinger = Pinger(client_ns, SERVICE_IP, interval=0.01, duration=5)
        time.sleep(1.5)
    moved_at = time.time()
    try:
        operation = netlab.move_service_ip(api, service_ip["id"], vms["standby"]["id"])
        replies = pinger.result() if pinger else None
    finally:
        if pinger:
            pinger.stop()
    console.print(
        f"moved to the standby at {vms['standby']['site']} by operation {operation['id'][-8:]}: "
        f"the new holder's site had it {operation['result']['switchover_s']:.3f} s after the "
        "request"
    )
    if replies is not None:
        first = replies.first_from(vms["standby"]["port"]["mac"], moved_at)
        answered = f"{first - moved_at:.3f} s" if first else "never"
        console.print(
            f"the client's pings every 10 ms: first answer from the standby after {answered}, "
            f"longest silence {replies.loss_window(moved_at) * 1000:.0f} ms "
            f"({len(replies.answered)} answers in all)"
        )
