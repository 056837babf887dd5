"""Networks that span sites, end to end through the engine: the API (202 + operation), a real
worker process, two real site-sims, and what each site's Neutron then holds (read back
through openstacksdk): the network on Cascade's VNI, the server's port with Cascade's
address, and its remote port at the other site pointing at the server's host VTEP."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from cascade.cli.embedded import EmbeddedSite
from cascade.network.addresses import FIRST_VNI
from cascade.sites.driver import SiteDriver
from tests.engine.conftest import WorkerFactory, create_server, wait_operation


def _call(site: EmbeddedSite, what: str, action: Any) -> Any:
    return SiteDriver(site.access()).call(what, action)


def create_network(
    client: TestClient, token: str, name: str, cidr: str, sites: list[str]
) -> dict[str, Any]:
    response = client.post(
        "/v1/networks",
        headers={"X-Auth-Token": token},
        json={"name": name, "cidr": cidr, "sites": sites},
    )
    assert response.status_code == 202, response.text
    done = wait_operation(client, token, response.json()["operation"]["id"])
    assert done["status"] == "succeeded", done
    network: dict[str, Any] = client.get(
        f"/v1/networks/{name}", headers={"X-Auth-Token": token}
    ).json()["network"]
    return network


def refused(
    client: TestClient, token: str, path: str, body: dict[str, Any], status: int, words: str
) -> None:
    """A POST answered ``status`` with ``words`` in its message, and no operation queued."""
    headers = {"X-Auth-Token": token}

    def queued() -> set[str]:
        listed = client.get("/v1/operations", headers=headers).json()["operations"]
        return {operation["id"] for operation in listed}

    before = queued()
    response = client.post(path, headers=headers, json=body)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"], response.text
    assert queued() == before


def _remote_ports(site: EmbeddedSite) -> list[Any]:
    return _call(site, "list ports", lambda c: list(c.network.ports(device_owner="compute:shadow")))


def _vtep_of(site: EmbeddedSite, host: str) -> str:
    agents = _call(site, "agents", lambda c: list(c.network.agents(host=host)))
    return str(agents[0].configuration["tunneling_ip"])


def test_a_server_on_a_stretched_network_has_remote_ports_at_the_other_site(
    client: TestClient,
    admin_token: str,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    start_worker("w1")
    headers = {"X-Auth-Token": admin_token}
    site_a, site_b = two_sites
    network = create_network(client, admin_token, "vnf-net", "10.50.0.0/24", ["site-a", "site-b"])
    assert network["status"] == "ACTIVE"
    assert network["vni"] >= FIRST_VNI
    assert {name: s["status"] for name, s in network["sites"].items()} == {
        "site-a": "present",
        "site-b": "present",
    }
    for site in two_sites:
        site_network_id = network["sites"][site.site_name]["site_network_id"]
        at_site = _call(site, "show", lambda c, i=site_network_id: c.network.get_network(i))
        assert (at_site.provider_network_type, at_site.provider_segmentation_id) == (
            "vxlan",
            network["vni"],
        )

    servers = {}
    for name, site_name in (("vm-a", "site-a"), ("vm-b", "site-b")):
        accepted = create_server(
            client, admin_token, name, site=site_name, port={"network": "vnf-net"}
        )
        done = wait_operation(client, admin_token, accepted["operation"]["id"])
        assert done["status"] == "succeeded", done
        servers[name] = client.get(
            f"/v1/servers/{accepted['server']['id']}", headers=headers
        ).json()["server"]
    port_a, port_b = servers["vm-a"]["port"], servers["vm-b"]["port"]
    assert (port_a["ip"], port_b["ip"]) == ("10.50.0.2", "10.50.0.3")  # .1 is the gateway
    assert port_a["mac"] != port_b["mac"]
    assert port_a["vtep"] == _vtep_of(site_a, port_a["host"])

    # Each site holds a remote port for the other site's server, toward its host's VTEP.
    for site, remote in ((site_b, port_a), (site_a, port_b)):
        (shadow,) = _remote_ports(site)
        assert shadow.mac_address == remote["mac"]
        assert shadow.fixed_ips[0]["ip_address"] == remote["ip"]
        assert shadow.binding_profile == {"tunnel_ip": remote["vtep"]}

    busy = client.delete("/v1/networks/vnf-net", headers=headers)
    assert busy.status_code == 409
    assert "ports" in busy.json()["error"]["message"]

    for server in servers.values():
        deleted = client.delete(f"/v1/servers/{server['id']}", headers=headers)
        done = wait_operation(client, admin_token, deleted.json()["operation"]["id"])
        assert done["status"] == "succeeded", done
    assert _remote_ports(site_a) == []
    assert _remote_ports(site_b) == []
    for site in two_sites:
        left = _call(site, "ports", lambda c: [p.name for p in c.network.ports()])
        assert not [name for name in left if name.startswith("cascade-")]

    deleted = client.delete("/v1/networks/vnf-net", headers=headers)
    done = wait_operation(client, admin_token, deleted.json()["operation"]["id"])
    assert done["status"] == "succeeded", done
    assert client.get("/v1/networks/vnf-net", headers=headers).status_code == 404
    for site in two_sites:
        names = _call(site, "networks", lambda c: [n.name for n in c.network.networks()])
        assert "vnf-net" not in names
    # Its VNI is free again: the next network takes it.
    again = create_network(client, admin_token, "next-net", "10.50.0.0/24", ["site-a"])
    assert again["vni"] == network["vni"]

    # Against real networks: a server at a site the network does not span, and one more port
    # than a /29 has addresses (.1 is the gateway: five), are refused with nothing queued.
    server = {"name": "x", "flavor": "m1.tiny", "image": "i", "site": "site-b"}
    server["port"] = {"network": "next-net"}
    refused(client, admin_token, "/v1/servers", server, 400, "does not span site site-b")
    create_network(client, admin_token, "tiny", "10.51.0.0/29", ["site-a"])
    filled = [
        create_server(client, admin_token, f"t{i}", site="site-a", port={"network": "tiny"})
        for i in range(5)
    ]
    server |= {"site": "site-a", "port": {"network": "tiny"}}
    refused(client, admin_token, "/v1/servers", server, 409, "tiny (10.51.0.0/29) has no free")
    for accepted in filled:
        done = wait_operation(client, admin_token, accepted["operation"]["id"])
        assert done["status"] == "succeeded", done


def test_bad_networks_and_ports_are_refused_before_anything_is_queued(
    client: TestClient, admin_token: str
) -> None:
    headers = {"X-Auth-Token": admin_token}
    for cidr, expected in (
        ("10.0.0.0/30", "/16 to /29"),
        ("10.0.0.0/8", "/16 to /29"),
        ("10.0.0.1/24", "not a network address"),
        ("fd00::/64", "only IPv4"),
    ):
        response = client.post(
            "/v1/networks", headers=headers, json={"name": "n", "cidr": cidr, "sites": ["site-a"]}
        )
        assert response.status_code == 400, (cidr, response.text)
        assert expected in response.json()["error"]["message"], cidr
    unknown = client.post(
        "/v1/networks",
        headers=headers,
        json={"name": "n", "cidr": "10.1.0.0/24", "sites": ["nowhere"]},
    )
    assert unknown.status_code == 400
    assert "nowhere" in unknown.json()["error"]["message"]
    chosen = client.post(  # VNIs are Cascade's to give: a caller cannot put two on one
        "/v1/networks",
        headers=headers,
        json={"name": "n", "cidr": "10.1.0.0/24", "sites": ["site-a"], "vni": 5000},
    )
    assert chosen.status_code == 400, chosen.text
    assert "vni" in chosen.json()["error"]["message"]
    both = client.post(
        "/v1/servers",
        headers=headers,
        json={"name": "x", "flavor": "f", "image": "i", "network": "n", "port": {"network": "n"}},
    )
    assert both.status_code == 400
    missing = client.post(
        "/v1/servers",
        headers=headers,
        json={"name": "x", "flavor": "f", "image": "i", "port": {"network": "absent"}},
    )
    assert missing.status_code == 404
    listed = client.get("/v1/operations", headers=headers).json()
    assert listed["operations"] == []
