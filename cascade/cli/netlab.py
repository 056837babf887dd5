"""Networks that span sites, driven through Cascade's API for ``cascade demo`` and ``cascade
bench network``: a stretched network, servers on it, a service IP and its move, each waited
for to the end of its operation; and, at an emulated site, where a port's VM lives
(``/sim/v1/dataplane``: the "console" of an emulated VM is its network namespace)."""

from __future__ import annotations

import time
from typing import Any

from cascade.cli.clients import SessionClient
from cascade.cli.embedded import EmbeddedSite
from cascade.errors import CascadeError
from cascade.sites.driver import SiteDriver


def finished(api: SessionClient, accepted: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    """The operation of a 202 answer, once it succeeded (a failure is an error)."""
    operation_id = accepted["operation"]["id"]
    deadline = time.monotonic() + timeout
    while True:
        operation: dict[str, Any] = api.call("GET", f"/v1/operations/{operation_id}")["operation"]
        if operation["status"] == "succeeded":
            return operation
        if operation["status"] == "failed":
            raise CascadeError(f"{operation['kind']} failed: {operation['error']}")
        if time.monotonic() > deadline:
            raise CascadeError(f"{operation['kind']} still {operation['status']} after {timeout} s")
        time.sleep(0.1)


def stretched_network(api: SessionClient, name: str, cidr: str, sites: list[str]) -> dict[str, Any]:
    """The network over ``sites`` (made unless it exists)."""
    listed = api.call("GET", "/v1/networks")["networks"]
    found = next((n for n in listed if n["name"] == name), None)
    if found is None:
        accepted = api.call(
            "POST", "/v1/networks", {"name": name, "cidr": cidr, "sites": sites}, 202
        )
        finished(api, accepted)
    network: dict[str, Any] = api.call("GET", f"/v1/networks/{name}")["network"]
    return network


def boot(
    api: SessionClient, name: str, site: str, network: str, image: str, flavor: str = "m1.tiny"
) -> dict[str, Any]:
    """A server with a port on a Cascade network, ACTIVE; its view (with the port)."""
    body = {
        "name": name,
        "site": site,
        "flavor": flavor,
        "image": image,
        "port": {"network": network},
    }
    accepted = api.call("POST", "/v1/servers", body, 202)
    finished(api, accepted)
    server: dict[str, Any] = api.call("GET", f"/v1/servers/{accepted['server']['id']}")["server"]
    return server


def take_service_ip(api: SessionClient, network: str, holder: str, address: str) -> dict[str, Any]:
    body = {"network": network, "holder": holder, "address": address}
    accepted = api.call("POST", "/v1/service-ips", body, 202)
    finished(api, accepted)
    service_ip: dict[str, Any] = accepted["service_ip"]
    return service_ip


def move_service_ip(api: SessionClient, service_ip_id: str, to: str) -> dict[str, Any]:
    """Move it; the finished operation (its result has ``switchover_s``)."""
    accepted = api.call("POST", f"/v1/service-ips/{service_ip_id}/move", {"to": to}, 202)
    return finished(api, accepted)


def dataplane(site: EmbeddedSite) -> dict[str, Any]:
    session = SiteDriver(site.access()).connection.session
    answer = session.get(f"{site.url}/sim/v1/dataplane")
    if answer.status_code != 200:
        raise CascadeError(f"{site.site_name}'s dataplane view answered {answer.status_code}")
    return dict(answer.json())


def vm_namespace(site: EmbeddedSite, site_port_id: str, timeout: float = 30) -> str:
    """The network namespace of the emulated VM behind a port, once its host holds it."""
    deadline = time.monotonic() + timeout
    while True:
        for port in dataplane(site)["ports"]:
            if port["id"] == site_port_id and port["vm_namespace"]:
                return str(port["vm_namespace"])
        if time.monotonic() > deadline:
            raise CascadeError(f"port {site_port_id} is at no host of {site.site_name}")
        time.sleep(0.1)
