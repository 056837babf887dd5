"""Service IPs through the engine and two real site-sims: where each site's Neutron says the
address lives (an allowed address pair on the holder's port at its site, on its remote port
elsewhere), a move, and a move while the old holder's site is down, brought in line by the
convergence pass when it returns."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from cascade.cli.embedded import EmbeddedSite
from cascade.network.service_ip_steps import same_address
from cascade.sites.driver import SiteDriver
from tests.conftest import hidden_from, make_tenant
from tests.engine.conftest import WorkerFactory, create_server, wait_operation
from tests.network.test_networks import create_network, refused


def _until(condition: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)
    return value


def holders(site: EmbeddedSite, address: str) -> list[str]:
    """Names of the site's ports that carry ``address`` as an allowed address pair."""
    ports = SiteDriver(site.access()).call("ports", lambda c: list(c.network.ports()))
    return sorted(
        p.name
        for p in ports
        if any(same_address(pair["ip_address"], address) for pair in p.allowed_address_pairs or [])
    )


def _server(client: TestClient, token: str, name: str, site: str) -> dict[str, Any]:
    accepted = create_server(client, token, name, site=site, port={"network": "ha-net"})
    done = wait_operation(client, token, accepted["operation"]["id"])
    assert done["status"] == "succeeded", done
    response = client.get(
        f"/v1/servers/{accepted['server']['id']}", headers={"X-Auth-Token": token}
    )
    server: dict[str, Any] = response.json()["server"]
    return server


def _move(client: TestClient, token: str, sip_id: str, to: str) -> dict[str, Any]:
    response = client.post(
        f"/v1/service-ips/{sip_id}/move", headers={"X-Auth-Token": token}, json={"to": to}
    )
    assert response.status_code == 202, response.text
    return wait_operation(client, token, response.json()["operation"]["id"])


def test_a_service_ip_moves_between_sites_and_survives_a_partition(
    client: TestClient,
    admin_token: str,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    site_a, site_b = two_sites
    headers = {"X-Auth-Token": admin_token}
    start_worker("w1", CASCADE_SITE_CALL_DEADLINE="2", CASCADE_CONVERGENCE_INTERVAL="2")
    create_network(client, admin_token, "ha-net", "10.70.0.0/24", ["site-a", "site-b"])
    master = _server(client, admin_token, "master", "site-a")
    standby = _server(client, admin_token, "standby", "site-b")
    local_a, remote_a = f"cascade-{master['port']['id']}", f"cascade-remote-{master['port']['id']}"
    local_b, remote_b = (
        f"cascade-{standby['port']['id']}",
        f"cascade-remote-{standby['port']['id']}",
    )

    no_port = client.post(
        "/v1/service-ips",
        headers=headers,
        json={"network": "ha-net", "holder": "not-a-server"},
    )
    assert no_port.status_code == 400
    response = client.post(
        "/v1/service-ips",
        headers=headers,
        json={"network": "ha-net", "holder": master["id"], "address": "10.70.0.100"},
    )
    assert response.status_code == 202, response.text
    sip_id = response.json()["service_ip"]["id"]
    done = wait_operation(client, admin_token, response.json()["operation"]["id"])
    assert done["status"] == "succeeded", done
    assert holders(site_a, "10.70.0.100") == [local_a]
    assert holders(site_b, "10.70.0.100") == [remote_a]
    busy = client.delete(f"/v1/servers/{master['id']}", headers=headers)
    assert busy.status_code == 409
    assert "10.70.0.100" in busy.json()["error"]["message"]
    same = client.post(f"/v1/service-ips/{sip_id}/move", headers=headers, json={"to": master["id"]})
    assert same.status_code == 400
    tenant = make_tenant(client, admin_token)
    for method in ("GET", "DELETE"):
        hidden_from(client, tenant, f"/v1/service-ips/{sip_id}", "service IP", method)
    move = f"/v1/service-ips/{sip_id}/move"
    stray = {"to": "not-on-ha-net"}  # a server with no port on the service IP's network
    refused(client, admin_token, move, stray, 400, "has no port on network ha-net")

    moved = _move(client, admin_token, sip_id, standby["id"])
    assert moved["status"] == "succeeded", moved
    assert moved["result"]["switchover_s"] > 0
    assert holders(site_a, "10.70.0.100") == [remote_b]
    assert holders(site_b, "10.70.0.100") == [local_b]
    shown = client.get(f"/v1/service-ips/{sip_id}", headers=headers).json()["service_ip"]
    assert (shown["holder"], shown["holder_site"]) == (standby["id"], "site-b")
    assert shown["switchover_s"] == moved["result"]["switchover_s"]

    # The holder's site is cut off: the move still succeeds where the new holder is, and the
    # cut-off site is brought in line once it is back.
    site_b.stop()
    moved = _move(client, admin_token, sip_id, master["id"])
    assert moved["status"] == "succeeded", moved
    assert list(moved["result"]["pending_sites"]) == ["site-b"]
    assert holders(site_a, "10.70.0.100") == [local_a]
    site_b.start(timeout=120)  # a loaded machine may take longer than 30 s
    _until(lambda: holders(site_b, "10.70.0.100") == [remote_a])
