"""Networks that span sites when a site fails: a site down during create leaves the network
in ERROR naming that site while the others proceed, and the convergence pass completes it
once the site is back; a remote port removed behind Cascade's back is made again."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from cascade.cli.embedded import EmbeddedSite
from cascade.sites.driver import SiteDriver
from tests.engine.conftest import WorkerFactory, create_server, wait_operation


def _until(condition: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)
    return value


def _network(client: TestClient, token: str, name: str) -> dict[str, Any]:
    response = client.get(f"/v1/networks/{name}", headers={"X-Auth-Token": token})
    network: dict[str, Any] = response.json()["network"]
    return network


def _shadows(site: EmbeddedSite) -> list[Any]:
    return SiteDriver(site.access()).call(
        "list", lambda c: list(c.network.ports(device_owner="compute:shadow"))
    )


def test_a_site_down_at_create_is_completed_by_convergence(
    client: TestClient,
    admin_token: str,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    site_b = two_sites[1]
    start_worker("w1", CASCADE_SITE_CALL_DEADLINE="2", CASCADE_CONVERGENCE_INTERVAL="2")
    site_b.stop()
    response = client.post(
        "/v1/networks",
        headers={"X-Auth-Token": admin_token},
        json={"name": "edge-net", "cidr": "10.60.0.0/24", "sites": ["site-a", "site-b"]},
    )
    assert response.status_code == 202, response.text
    done = wait_operation(client, admin_token, response.json()["operation"]["id"])
    assert done["status"] == "failed"
    assert "1 of 2 sites failed" in done["error"]
    assert "site site-b" in done["error"]
    network = _network(client, admin_token, "edge-net")
    assert network["status"] == "ERROR"
    assert network["sites"]["site-a"]["status"] == "present"
    assert network["sites"]["site-b"]["status"] == "error"

    # A server at site-a meanwhile: its remote port at site-b must follow once site-b is back.
    accepted = create_server(
        client, admin_token, "vm-a", site="site-a", port={"network": "edge-net"}
    )
    assert wait_operation(client, admin_token, accepted["operation"]["id"])["status"] == "succeeded"

    site_b.start(timeout=120)  # a loaded machine may take longer than 30 s
    _until(lambda: _network(client, admin_token, "edge-net")["status"] == "ACTIVE")
    network = _network(client, admin_token, "edge-net")
    assert network["sites"]["site-b"]["status"] == "present"
    (shadow,) = _until(lambda: _shadows(site_b))
    ip = client.get(
        f"/v1/servers/{accepted['server']['id']}", headers={"X-Auth-Token": admin_token}
    )
    assert shadow.fixed_ips[0]["ip_address"] == ip.json()["server"]["port"]["ip"]

    # Removed behind Cascade's back: the next pass makes it again.
    SiteDriver(site_b.access()).call("delete", lambda c: c.network.delete_port(shadow.id))
    (again,) = _until(lambda: _shadows(site_b))
    assert again.id != shadow.id
    assert again.binding_profile == shadow.binding_profile


def test_a_port_bound_to_another_host_moves_its_remote_ports(
    client: TestClient,
    admin_token: str,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    """The site moves a server's port to another host (what a migration does to its binding):
    the convergence pass locates it again and its remote port elsewhere follows the new VTEP."""
    site_a, site_b = two_sites
    start_worker("w1", CASCADE_CONVERGENCE_INTERVAL="2")
    response = client.post(
        "/v1/networks",
        headers={"X-Auth-Token": admin_token},
        json={"name": "moving", "cidr": "10.61.0.0/24", "sites": ["site-a", "site-b"]},
    )
    assert (
        wait_operation(client, admin_token, response.json()["operation"]["id"])["status"]
        == "succeeded"
    )
    accepted = create_server(client, admin_token, "vm", site="site-a", port={"network": "moving"})
    assert wait_operation(client, admin_token, accepted["operation"]["id"])["status"] == "succeeded"
    server_url = f"/v1/servers/{accepted['server']['id']}"
    port = client.get(server_url, headers={"X-Auth-Token": admin_token}).json()["server"]["port"]
    (shadow,) = _shadows(site_b)
    assert shadow.binding_profile == {"tunnel_ip": port["vtep"]}

    driver = SiteDriver(site_a.access())
    hosts = driver.call(
        "agents", lambda c: {a.host: a.configuration["tunneling_ip"] for a in c.network.agents()}
    )
    other = next(host for host in sorted(hosts) if host != port["host"])
    driver.call(
        "move the port",
        lambda c: c.network.update_port(port["site_port_id"], binding_host_id=other),
    )
    _until(lambda: _shadows(site_b)[0].binding_profile == {"tunnel_ip": hosts[other]})
    moved = client.get(server_url, headers={"X-Auth-Token": admin_token}).json()["server"]["port"]
    assert (moved["host"], moved["vtep"]) == (other, hosts[other])
