"""Routers between networks at different sites, through the engine and two real site-sims:
what each site's Neutron then holds (read back through openstacksdk): a site router with the
gateway of the network there, an interface on the transit network, a route to the other
site's network through the other site router's transit address, and the transit network's
remote ports; and nothing once it is deleted."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from cascade.cli.embedded import EmbeddedSite
from cascade.sites.driver import SiteDriver
from tests.engine.conftest import WorkerFactory, wait_operation
from tests.network.test_networks import create_network


def _site_routers(site: EmbeddedSite) -> list[Any]:
    return SiteDriver(site.access()).call("routers", lambda c: list(c.network.routers()))


def _interfaces(site: EmbeddedSite, router_id: str) -> set[str]:
    ports = SiteDriver(site.access()).call(
        "ports", lambda c: list(c.network.ports(device_id=router_id))
    )
    return {ip["ip_address"] for p in ports for ip in p.fixed_ips}


def test_a_router_joins_networks_of_two_sites(
    client: TestClient,
    admin_token: str,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    start_worker("w1")
    headers = {"X-Auth-Token": admin_token}
    create_network(client, admin_token, "net-a", "10.81.0.0/24", ["site-a"])
    create_network(client, admin_token, "net-b", "10.82.0.0/24", ["site-b"])
    overlapping = client.post(
        "/v1/routers", headers=headers, json={"name": "r", "networks": ["net-a", "net-a"]}
    )
    assert overlapping.status_code == 400

    response = client.post(
        "/v1/routers", headers=headers, json={"name": "east-west", "networks": ["net-a", "net-b"]}
    )
    assert response.status_code == 202, response.text
    done = wait_operation(client, admin_token, response.json()["operation"]["id"])
    assert done["status"] == "succeeded", done
    shown = client.get("/v1/routers/east-west", headers=headers).json()["router"]
    assert shown["status"] == "ACTIVE"
    transit_a = shown["sites"]["site-a"]["transit_ip"]
    transit_b = shown["sites"]["site-b"]["transit_ip"]
    assert shown["sites"]["site-a"]["routes"] == [f"10.82.0.0/24 via {transit_b}"]
    assert shown["sites"]["site-b"]["routes"] == [f"10.81.0.0/24 via {transit_a}"]

    for site, gateway, own, other, net in (
        (two_sites[0], "10.81.0.1", transit_a, transit_b, "10.82.0.0/24"),
        (two_sites[1], "10.82.0.1", transit_b, transit_a, "10.81.0.0/24"),
    ):
        (site_router,) = _site_routers(site)
        assert _interfaces(site, site_router.id) == {gateway, own}
        assert site_router.routes == [{"destination": net, "nexthop": other}]
        shadows = SiteDriver(site.access()).call(
            "shadows", lambda c: list(c.network.ports(device_owner="compute:shadow"))
        )
        assert [p.fixed_ips[0]["ip_address"] for p in shadows] == [other]

    groups = SiteDriver(two_sites[0].access()).call(
        "rules",
        lambda c: [
            r.remote_ip_prefix
            for r in c.network.security_group_rules(direction="ingress")
            if r.remote_ip_prefix
        ],
    )
    assert {"10.81.0.0/24", "10.82.0.0/24"} <= set(groups)
    busy = client.delete("/v1/networks/net-a", headers=headers)
    assert busy.status_code == 409

    deleted = client.delete("/v1/routers/east-west", headers=headers)
    done = wait_operation(client, admin_token, deleted.json()["operation"]["id"])
    assert done["status"] == "succeeded", done
    assert client.get("/v1/routers/east-west", headers=headers).status_code == 404
    for site in two_sites:
        assert _site_routers(site) == []
        names = SiteDriver(site.access()).call(
            "networks", lambda c: [n.name for n in c.network.networks()]
        )
        assert "east-west-transit" not in names
    names = [n["name"] for n in client.get("/v1/networks", headers=headers).json()["networks"]]
    assert names == ["net-a", "net-b"]
