"""The emulated Neutron: every resource's lifecycle, IPAM and MAC uniqueness, provider
attributes, visibility between projects, routers and floating IPs, list queries, the port
functions the compute service calls, and bad input answered in Neutron's error shape."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cascade_sim import network
from cascade_sim.errors import SimError
from cascade_sim.region import Region
from tests.conftest import Tenant, make_tenant

NET = "/network/v2.0"
Headers = dict[str, str]


def create(client: TestClient, headers: Headers, plural: str, **body: Any) -> dict[str, Any]:
    key = {"security-groups": "security_group", "security-group-rules": "security_group_rule"}
    singular = key.get(plural, plural[:-1])
    response = client.post(f"{NET}/{plural}", headers=headers, json={singular: body})
    assert response.status_code == 201, response.text
    return dict(response.json()[singular])


def neutron_error(response: Any, status: int, kind: str | None = None) -> str:
    """Asserts a Neutron error body and returns its type."""
    assert response.status_code == status, response.text
    error = response.json()["NeutronError"]
    assert error["message"]
    assert set(error) == {"type", "message", "detail"}
    if kind is not None:
        assert error["type"] == kind, error
    return str(error["type"])


def network_with_subnet(
    client: TestClient, headers: Headers, cidr: str = "10.0.0.0/24", **net: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    created = create(client, headers, "networks", name="net", **net)
    subnet = create(client, headers, "subnets", network_id=created["id"], cidr=cidr, ip_version=4)
    return created, subnet


@pytest.fixture
def member(site_client: TestClient, site_token: str) -> Tenant:
    return make_tenant(site_client, site_token)


def test_version_discovery_resources_and_extensions(
    site_client: TestClient, site_headers: Headers
) -> None:
    for path in ("/network", "/network/"):
        versions = site_client.get(path).json()["versions"]
        assert versions[0]["id"] == "v2.0"
        assert versions[0]["status"] == "CURRENT"
        assert versions[0]["links"][0]["href"].endswith("/network/v2.0/")
    neutron_error(site_client.get(f"{NET}/"), 401)
    resources = site_client.get(f"{NET}/", headers=site_headers).json()["resources"]
    collections = {r["collection"] for r in resources}
    assert {"networks", "subnets", "ports", "routers", "floatingips"} <= collections
    assert {"security_groups", "security_group_rules"} <= collections
    aliases = {
        e["alias"]
        for e in site_client.get(f"{NET}/extensions", headers=site_headers).json()["extensions"]
    }
    assert {"router", "provider", "binding", "security-group", "standard-attr-tag"} <= aliases
    shown = site_client.get(f"{NET}/extensions/router", headers=site_headers).json()
    assert shown["extension"]["alias"] == "router"
    neutron_error(site_client.get(f"{NET}/extensions/nope", headers=site_headers), 404)


def test_network_subnet_port_lifecycle(site_client: TestClient, site_headers: Headers) -> None:
    created = create(site_client, site_headers, "networks", name="n1")
    assert created["status"] == "ACTIVE"
    assert created["provider:network_type"] == "vxlan"
    assert 1 <= created["provider:segmentation_id"] <= 16777215
    assert created["mtu"] == 1450
    assert created["project_id"] == created["tenant_id"]
    assert created["revision_number"] == 1
    assert created["created_at"].endswith("Z")
    subnet = create(
        site_client, site_headers, "subnets", network_id=created["id"], cidr="10.1.0.0/24"
    )
    assert subnet["ip_version"] == 4
    assert subnet["gateway_ip"] == "10.1.0.1"
    assert subnet["allocation_pools"] == [{"start": "10.1.0.2", "end": "10.1.0.254"}]
    assert subnet["enable_dhcp"] is True
    shown = site_client.get(f"{NET}/networks/{created['id']}", headers=site_headers).json()
    assert shown["network"]["subnets"] == [subnet["id"]]

    port = create(site_client, site_headers, "ports", network_id=created["id"], name="p1")
    assert port["fixed_ips"] == [{"subnet_id": subnet["id"], "ip_address": "10.1.0.2"}]
    assert port["mac_address"].startswith("fa:16:3e:")
    assert port["status"] == "DOWN"
    assert port["binding:vif_type"] == "unbound"
    groups = site_client.get(f"{NET}/security-groups", headers=site_headers).json()
    default = next(g for g in groups["security_groups"] if g["name"] == "default")
    assert port["security_groups"] == [default["id"]]

    updated = site_client.put(
        f"{NET}/ports/{port['id']}",
        headers=site_headers,
        json={"port": {"name": "renamed", "binding:host_id": "site-a-host-1"}},
    ).json()["port"]
    assert updated["name"] == "renamed"
    assert updated["revision_number"] == 2
    assert (updated["status"], updated["binding:vif_type"]) == ("ACTIVE", "ovs")
    subset = site_client.get(
        f"{NET}/ports/{port['id']}?fields=id&fields=name", headers=site_headers
    ).json()
    assert subset == {"port": {"id": port["id"], "name": "renamed"}}

    subnet_update = site_client.put(
        f"{NET}/subnets/{subnet['id']}",
        headers=site_headers,
        json={"subnet": {"dns_nameservers": ["8.8.8.8"], "enable_dhcp": False}},
    )
    assert subnet_update.json()["subnet"]["dns_nameservers"] == ["8.8.8.8"]
    neutron_error(
        site_client.delete(f"{NET}/subnets/{subnet['id']}", headers=site_headers),
        409,
        "SubnetInUse",
    )
    neutron_error(
        site_client.delete(f"{NET}/networks/{created['id']}", headers=site_headers),
        409,
        "NetworkInUse",
    )
    assert site_client.delete(f"{NET}/ports/{port['id']}", headers=site_headers).status_code == 204
    assert (
        site_client.delete(f"{NET}/subnets/{subnet['id']}", headers=site_headers).status_code == 204
    )
    assert (
        site_client.delete(f"{NET}/networks/{created['id']}", headers=site_headers).status_code
        == 204
    )
    neutron_error(
        site_client.get(f"{NET}/networks/{created['id']}", headers=site_headers),
        404,
        "NetworkNotFound",
    )


def test_ip_and_mac_allocation_never_collide(
    site_client: TestClient, site_headers: Headers
) -> None:
    created, subnet = network_with_subnet(site_client, site_headers, cidr="10.2.0.0/28")
    ports = [
        create(site_client, site_headers, "ports", network_id=created["id"]) for _ in range(13)
    ]
    addresses = [p["fixed_ips"][0]["ip_address"] for p in ports]
    assert len(set(addresses)) == 13
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("10.2.0.0/28") for a in addresses)
    assert "10.2.0.1" not in addresses  # the gateway is not in the pool
    assert len({p["mac_address"] for p in ports}) == 13
    full = site_client.post(
        f"{NET}/ports", headers=site_headers, json={"port": {"network_id": created["id"]}}
    )
    neutron_error(full, 409, "IpAddressGenerationFailure")
    taken = {"subnet_id": subnet["id"], "ip_address": addresses[0]}
    again = site_client.post(
        f"{NET}/ports",
        headers=site_headers,
        json={"port": {"network_id": created["id"], "fixed_ips": [taken]}},
    )
    neutron_error(again, 409, "IpAddressAlreadyAllocated")
    outside = site_client.post(
        f"{NET}/ports",
        headers=site_headers,
        json={"port": {"network_id": created["id"], "fixed_ips": [{"ip_address": "10.9.9.9"}]}},
    )
    neutron_error(outside, 400, "InvalidIpForNetwork")
    same_mac = site_client.post(
        f"{NET}/ports",
        headers=site_headers,
        json={"port": {"network_id": created["id"], "mac_address": ports[0]["mac_address"]}},
    )
    neutron_error(same_mac, 409, "MacAddressInUse")

    site_client.delete(f"{NET}/ports/{ports[3]['id']}", headers=site_headers)
    reused = create(site_client, site_headers, "ports", network_id=created["id"])
    assert reused["fixed_ips"][0]["ip_address"] == addresses[3]
    moved = site_client.put(
        f"{NET}/ports/{reused['id']}",
        headers=site_headers,
        json={"port": {"fixed_ips": [{"ip_address": addresses[0]}]}},
    )
    neutron_error(moved, 409, "IpAddressAlreadyAllocated")
    kept = site_client.get(f"{NET}/ports/{reused['id']}", headers=site_headers).json()["port"]
    assert kept["fixed_ips"][0]["ip_address"] == addresses[3]  # a failed update keeps its IP
    site_client.delete(f"{NET}/ports/{ports[5]['id']}", headers=site_headers)
    half_valid = site_client.put(
        f"{NET}/ports/{reused['id']}",
        headers=site_headers,
        json={
            "port": {
                "fixed_ips": [{"ip_address": addresses[5]}],
                "security_groups": ["00000000-0000-0000-0000-000000000000"],
            }
        },
    )
    neutron_error(half_valid, 404, "SecurityGroupNotFound")
    freed = {"network_id": created["id"], "fixed_ips": [{"ip_address": addresses[5]}]}
    taker = site_client.post(f"{NET}/ports", headers=site_headers, json={"port": freed})
    assert taker.status_code == 201, taker.text  # the refused update took nothing


def test_overlapping_cidrs_on_two_networks(site_client: TestClient, site_headers: Headers) -> None:
    first, _ = network_with_subnet(site_client, site_headers)
    second, _ = network_with_subnet(site_client, site_headers)
    a = create(site_client, site_headers, "ports", network_id=first["id"])
    b = create(site_client, site_headers, "ports", network_id=second["id"])
    assert a["fixed_ips"][0]["ip_address"] == b["fixed_ips"][0]["ip_address"] == "10.0.0.2"
    overlapping = site_client.post(
        f"{NET}/subnets",
        headers=site_headers,
        json={"subnet": {"network_id": first["id"], "cidr": "10.0.0.128/25"}},
    )
    neutron_error(overlapping, 400)


def test_segmentation_ids_are_unique_and_admin_only(
    site_client: TestClient, site_headers: Headers, member: Tenant
) -> None:
    fixed = create(
        site_client,
        site_headers,
        "networks",
        **{"provider:network_type": "vxlan", "provider:segmentation_id": 5000},
    )
    assert fixed["provider:segmentation_id"] == 5000
    clash = site_client.post(
        f"{NET}/networks",
        headers=site_headers,
        json={"network": {"provider:segmentation_id": 5000}},
    )
    neutron_error(clash, 409, "TunnelIdInUse")
    vlan = site_client.post(
        f"{NET}/networks",
        headers=site_headers,
        json={"network": {"provider:network_type": "vlan", "provider:segmentation_id": 5000}},
    )
    neutron_error(vlan, 400)
    vnis = {
        create(site_client, site_headers, "networks")["provider:segmentation_id"] for _ in range(5)
    }
    assert len(vnis) == 5
    assert 5000 not in vnis

    refused = site_client.post(
        f"{NET}/networks",
        headers=member.headers,
        json={"network": {"name": "mine", "provider:segmentation_id": 6000}},
    )
    neutron_error(refused, 403, "PolicyNotAuthorized")
    shared = site_client.post(
        f"{NET}/networks", headers=member.headers, json={"network": {"shared": True}}
    )
    neutron_error(shared, 403)
    mine = create(site_client, member.headers, "networks", name="mine")
    assert "provider:segmentation_id" not in mine  # provider attributes are for admins
    as_admin = site_client.get(f"{NET}/networks/{mine['id']}", headers=site_headers).json()
    assert as_admin["network"]["provider:segmentation_id"] not in vnis | {5000}
    assert as_admin["network"]["project_id"] == member.project_id


def test_visibility_between_projects(
    site_client: TestClient, site_headers: Headers, site_token: str, member: Tenant
) -> None:
    private, _ = network_with_subnet(site_client, site_headers)
    shared, _ = network_with_subnet(site_client, site_headers, shared=True)
    external, _ = network_with_subnet(
        site_client, site_headers, cidr="172.24.4.0/24", **{"router:external": True}
    )
    listed = site_client.get(f"{NET}/networks", headers=member.headers).json()["networks"]
    assert {n["id"] for n in listed} == {shared["id"], external["id"]}
    neutron_error(
        site_client.get(f"{NET}/networks/{private['id']}", headers=member.headers),
        404,
        "NetworkNotFound",
    )
    port = create(site_client, member.headers, "ports", network_id=shared["id"])
    assert port["project_id"] == member.project_id
    assert "binding:host_id" not in port  # binding attributes are for admins
    on_external = site_client.post(
        f"{NET}/ports", headers=member.headers, json={"port": {"network_id": external["id"]}}
    )
    neutron_error(on_external, 403)
    other = make_tenant(site_client, site_token)
    assert site_client.get(f"{NET}/ports", headers=other.headers).json()["ports"] == []
    neutron_error(
        site_client.get(f"{NET}/ports/{port['id']}", headers=other.headers), 404, "PortNotFound"
    )
    neutron_error(
        site_client.put(
            f"{NET}/networks/{shared['id']}",
            headers=member.headers,
            json={"network": {"name": "taken"}},
        ),
        403,
    )
    admin_sees = site_client.get(f"{NET}/ports?network_id={shared['id']}", headers=site_headers)
    assert [p["id"] for p in admin_sees.json()["ports"]] == [port["id"]]


def test_security_groups_and_rules(site_client: TestClient, site_headers: Headers) -> None:
    groups = site_client.get(f"{NET}/security-groups", headers=site_headers).json()
    default = groups["security_groups"][0]
    assert default["name"] == "default"
    directions = sorted(
        (r["direction"], r["ethertype"], r["remote_group_id"] == default["id"])
        for r in default["security_group_rules"]
    )
    assert directions == [
        ("egress", "IPv4", False),
        ("egress", "IPv6", False),
        ("ingress", "IPv4", True),
        ("ingress", "IPv6", True),
    ]
    web = create(site_client, site_headers, "security-groups", name="web", description="http")
    assert {r["direction"] for r in web["security_group_rules"]} == {"egress"}
    ssh = {
        "security_group_id": web["id"],
        "direction": "ingress",
        "protocol": "tcp",
        "port_range_min": 22,
        "port_range_max": 22,
        "remote_ip_prefix": "0.0.0.0/0",
    }
    rule = create(site_client, site_headers, "security-group-rules", **ssh)
    assert rule["ethertype"] == "IPv4"
    post = f"{NET}/security-group-rules"
    neutron_error(
        site_client.post(post, headers=site_headers, json={"security_group_rule": ssh}),
        409,
        "SecurityGroupRuleExists",
    )
    icmp = create(
        site_client,
        site_headers,
        "security-group-rules",
        security_group_id=web["id"],
        direction="ingress",
        protocol="icmp",
        port_range_min=8,
        port_range_max=0,
    )
    assert icmp["protocol"] == "icmp"
    tcp, icmp_type, gre = {"protocol": "tcp"}, {"protocol": "icmp"}, {"protocol": "gre"}
    both_remotes = {"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": web["id"]}
    bad_rules = [
        ({"port_range_min": 80, "port_range_max": 80}, "SecurityGroupProtocolRequiredWithPorts"),
        ({**tcp, "port_range_min": 90, "port_range_max": 80}, "SecurityGroupInvalidPortRange"),
        ({**icmp_type, "port_range_min": 300}, "SecurityGroupInvalidIcmpValue"),
        ({**gre, "port_range_min": 1, "port_range_max": 2}, "SecurityGroupInvalidProtocolForPort"),
        ({"remote_ip_prefix": "::/0"}, "SecurityGroupRuleParameterConflict"),
        (both_remotes, "SecurityGroupRemoteGroupAndRemoteIpPrefix"),
        ({"protocol": "bogus"}, "SecurityGroupRuleInvalidProtocol"),
        ({"direction": "sideways"}, "HTTPBadRequest"),
        ({**tcp, "port_range_min": "x"}, "HTTPBadRequest"),
    ]
    for extra, kind in bad_rules:
        body = {"security_group_id": web["id"], "direction": "ingress", **extra}
        response = site_client.post(post, headers=site_headers, json={"security_group_rule": body})
        neutron_error(response, 400, kind)

    net, _ = network_with_subnet(site_client, site_headers)
    port = create(
        site_client, site_headers, "ports", network_id=net["id"], security_groups=[web["id"]]
    )
    assert port["security_groups"] == [web["id"]]
    neutron_error(
        site_client.delete(f"{NET}/security-groups/{web['id']}", headers=site_headers),
        409,
        "SecurityGroupInUse",
    )
    neutron_error(
        site_client.put(
            f"{NET}/security-groups/{default['id']}",
            headers=site_headers,
            json={"security_group": {"name": "renamed"}},
        ),
        409,
        "SecurityGroupCannotUpdateDefault",
    )
    neutron_error(
        site_client.post(
            f"{NET}/security-groups",
            headers=site_headers,
            json={"security_group": {"name": "default"}},
        ),
        409,
    )
    assert site_client.delete(f"{post}/{rule['id']}", headers=site_headers).status_code == 204
    site_client.delete(f"{NET}/ports/{port['id']}", headers=site_headers)
    assert (
        site_client.delete(f"{NET}/security-groups/{web['id']}", headers=site_headers).status_code
        == 204
    )
    neutron_error(site_client.get(f"{post}/{icmp['id']}", headers=site_headers), 404)


def external_network(client: TestClient, headers: Headers) -> dict[str, Any]:
    created, _ = network_with_subnet(
        client,
        headers,
        cidr="172.24.4.0/24",
        **{
            "router:external": True,
            "provider:network_type": "flat",
            "provider:physical_network": "public",
        },
    )
    return created


def test_routers_interfaces_and_routes(site_client: TestClient, site_headers: Headers) -> None:
    public = external_network(site_client, site_headers)
    assert public["provider:segmentation_id"] is None
    private, subnet = network_with_subnet(site_client, site_headers)
    router = create(
        site_client,
        site_headers,
        "routers",
        name="r1",
        external_gateway_info={"network_id": public["id"]},
    )
    gateway = router["external_gateway_info"]
    assert gateway["network_id"] == public["id"]
    assert gateway["enable_snat"] is True
    gateway_ip = gateway["external_fixed_ips"][0]["ip_address"]
    assert gateway_ip.startswith("172.24.4.")
    gateway_ports = site_client.get(
        f"{NET}/ports?device_owner=network:router_gateway&device_id={router['id']}",
        headers=site_headers,
    ).json()["ports"]
    assert [p["fixed_ips"][0]["ip_address"] for p in gateway_ports] == [gateway_ip]
    pinned = {"network_id": public["id"], "external_fixed_ips": [{"ip_address": "172.24.4.100"}]}
    moved = site_client.put(
        f"{NET}/routers/{router['id']}",
        headers=site_headers,
        json={"router": {"external_gateway_info": pinned}},
    ).json()["router"]
    assert moved["external_gateway_info"]["external_fixed_ips"][0]["ip_address"] == "172.24.4.100"
    gateway_ports = site_client.get(
        f"{NET}/ports?device_owner=network:router_gateway", headers=site_headers
    ).json()["ports"]
    assert [p["fixed_ips"][0]["ip_address"] for p in gateway_ports] == ["172.24.4.100"]

    add = f"{NET}/routers/{router['id']}/add_router_interface"
    remove = f"{NET}/routers/{router['id']}/remove_router_interface"
    attached = site_client.put(add, headers=site_headers, json={"subnet_id": subnet["id"]})
    assert attached.status_code == 200, attached.text
    interface = attached.json()
    assert interface["subnet_ids"] == [subnet["id"]]
    port = site_client.get(f"{NET}/ports/{interface['port_id']}", headers=site_headers).json()
    assert port["port"]["device_owner"] == "network:router_interface"
    assert port["port"]["fixed_ips"][0]["ip_address"] == "10.0.0.1"  # the gateway IP
    neutron_error(site_client.put(add, headers=site_headers, json={"subnet_id": subnet["id"]}), 400)
    neutron_error(site_client.put(add, headers=site_headers, json={}), 400)

    route = {"destination": "192.168.50.0/24", "nexthop": "10.0.0.20"}
    routed = site_client.put(
        f"{NET}/routers/{router['id']}", headers=site_headers, json={"router": {"routes": [route]}}
    )
    assert routed.json()["router"]["routes"] == [route]
    unreachable = {"destination": "192.168.60.0/24", "nexthop": "10.99.0.1"}
    neutron_error(
        site_client.put(
            f"{NET}/routers/{router['id']}",
            headers=site_headers,
            json={"router": {"routes": [unreachable]}},
        ),
        400,
        "InvalidRoutes",
    )
    neutron_error(
        site_client.delete(f"{NET}/routers/{router['id']}", headers=site_headers),
        409,
        "RouterInUse",
    )
    neutron_error(
        site_client.delete(f"{NET}/networks/{private['id']}", headers=site_headers),
        409,
        "NetworkInUse",
    )
    neutron_error(
        site_client.delete(f"{NET}/ports/{interface['port_id']}", headers=site_headers),
        409,
        "ServicePortInUse",
    )
    neutron_error(
        site_client.put(remove, headers=site_headers, json={"subnet_id": subnet["id"]}),
        409,
        "RouterInterfaceInUseByRoute",
    )
    site_client.put(
        f"{NET}/routers/{router['id']}", headers=site_headers, json={"router": {"routes": []}}
    )
    removed = site_client.put(remove, headers=site_headers, json={"subnet_id": subnet["id"]})
    assert removed.json()["port_id"] == interface["port_id"]
    neutron_error(
        site_client.put(remove, headers=site_headers, json={"subnet_id": subnet["id"]}),
        404,
        "RouterInterfaceNotFoundForSubnet",
    )

    own = create(site_client, site_headers, "ports", network_id=private["id"])
    by_port = site_client.put(add, headers=site_headers, json={"port_id": own["id"]}).json()
    assert by_port["port_id"] == own["id"]
    site_client.put(remove, headers=site_headers, json={"port_id": own["id"]})
    neutron_error(site_client.get(f"{NET}/ports/{own['id']}", headers=site_headers), 404)
    cleared = site_client.put(
        f"{NET}/routers/{router['id']}",
        headers=site_headers,
        json={"router": {"external_gateway_info": None}},
    )
    assert cleared.json()["router"]["external_gateway_info"] is None
    assert site_client.get(
        f"{NET}/ports?device_id={router['id']}", headers=site_headers
    ).json() == {"ports": []}
    assert (
        site_client.delete(f"{NET}/routers/{router['id']}", headers=site_headers).status_code == 204
    )
    assert (
        site_client.delete(f"{NET}/networks/{private['id']}", headers=site_headers).status_code
        == 204
    )


def test_floating_ips(site_client: TestClient, site_headers: Headers) -> None:
    public = external_network(site_client, site_headers)
    private, subnet = network_with_subnet(site_client, site_headers)
    router = create(
        site_client, site_headers, "routers", external_gateway_info={"network_id": public["id"]}
    )
    port = create(site_client, site_headers, "ports", network_id=private["id"])
    unrouted = site_client.post(
        f"{NET}/floatingips",
        headers=site_headers,
        json={"floatingip": {"floating_network_id": public["id"], "port_id": port["id"]}},
    )
    neutron_error(unrouted, 404, "ExternalGatewayForFloatingIPNotFound")
    site_client.put(
        f"{NET}/routers/{router['id']}/add_router_interface",
        headers=site_headers,
        json={"subnet_id": subnet["id"]},
    )
    fip = create(
        site_client,
        site_headers,
        "floatingips",
        floating_network_id=public["id"],
        port_id=port["id"],
    )
    assert fip["status"] == "ACTIVE"
    assert fip["router_id"] == router["id"]
    assert fip["fixed_ip_address"] == port["fixed_ips"][0]["ip_address"]
    assert ipaddress.ip_address(fip["floating_ip_address"]) in ipaddress.ip_network("172.24.4.0/24")
    gateway_ip = router["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]
    assert fip["floating_ip_address"] != gateway_ip
    neutron_error(
        site_client.post(
            f"{NET}/floatingips",
            headers=site_headers,
            json={"floatingip": {"floating_network_id": public["id"], "port_id": port["id"]}},
        ),
        409,
        "FloatingIPPortAlreadyAssociated",
    )
    neutron_error(
        site_client.post(
            f"{NET}/floatingips",
            headers=site_headers,
            json={"floatingip": {"floating_network_id": private["id"]}},
        ),
        400,
    )
    neutron_error(
        site_client.put(
            f"{NET}/routers/{router['id']}/remove_router_interface",
            headers=site_headers,
            json={"subnet_id": subnet["id"]},
        ),
        409,
        "RouterInterfaceInUseByFloatingIP",
    )
    freed = site_client.put(
        f"{NET}/floatingips/{fip['id']}",
        headers=site_headers,
        json={"floatingip": {"port_id": None}},
    ).json()["floatingip"]
    assert (freed["status"], freed["port_id"], freed["router_id"]) == ("DOWN", None, None)
    again = site_client.put(
        f"{NET}/floatingips/{fip['id']}",
        headers=site_headers,
        json={"floatingip": {"port_id": port["id"]}},
    ).json()["floatingip"]
    assert again["status"] == "ACTIVE"
    site_client.delete(f"{NET}/ports/{port['id']}", headers=site_headers)
    orphan = site_client.get(f"{NET}/floatingips/{fip['id']}", headers=site_headers).json()
    assert orphan["floatingip"]["port_id"] is None
    neutron_error(site_client.delete(f"{NET}/networks/{public['id']}", headers=site_headers), 409)
    assert (
        site_client.delete(f"{NET}/floatingips/{fip['id']}", headers=site_headers).status_code
        == 204
    )
    listed = site_client.get(f"{NET}/ports?device_owner=network:floatingip", headers=site_headers)
    assert listed.json()["ports"] == []


def test_filters_fields_tags_sorting_and_pages(
    site_client: TestClient, site_headers: Headers
) -> None:
    created, subnet = network_with_subnet(site_client, site_headers)
    ports = [
        create(
            site_client,
            site_headers,
            "ports",
            network_id=created["id"],
            name=f"p{i}",
            device_id=f"vm-{i % 2}",
        )
        for i in range(5)
    ]

    def names(query: str) -> list[str]:
        response = site_client.get(f"{NET}/ports?{query}", headers=site_headers)
        assert response.status_code == 200, response.text
        return [p["name"] for p in response.json()["ports"]]

    assert sorted(names(f"network_id={created['id']}&device_id=vm-0")) == ["p0", "p2", "p4"]
    assert names("name=p3") == ["p3"]
    assert sorted(names("name=p1&name=p2")) == ["p1", "p2"]
    address = ports[2]["fixed_ips"][0]["ip_address"]
    assert names(f"fixed_ips=ip_address={address}&fixed_ips=subnet_id={subnet['id']}") == ["p2"]
    assert names("admin_state_up=false") == []
    assert names("sort_key=name&sort_dir=desc") == ["p4", "p3", "p2", "p1", "p0"]
    only = site_client.get(
        f"{NET}/ports?name=p0&fields=id&fields=mac_address", headers=site_headers
    )
    assert set(only.json()["ports"][0]) == {"id", "mac_address"}

    tags = f"{NET}/ports/{ports[0]['id']}/tags"
    assert site_client.put(tags, headers=site_headers, json={"tags": ["red", "blue"]}).json() == {
        "tags": ["red", "blue"]
    }
    assert site_client.put(f"{tags}/green", headers=site_headers).status_code == 201
    assert site_client.get(f"{tags}/green", headers=site_headers).status_code == 204
    neutron_error(site_client.get(f"{tags}/black", headers=site_headers), 404)
    assert site_client.delete(f"{tags}/blue", headers=site_headers).status_code == 204
    assert names("tags=red,green") == ["p0"]
    assert "p0" not in names("not-tags-any=red")
    assert site_client.get(tags, headers=site_headers).json() == {"tags": ["red", "green"]}
    shown = site_client.get(f"{NET}/ports/{ports[0]['id']}", headers=site_headers).json()["port"]
    assert shown["revision_number"] == 4

    first = site_client.get(f"{NET}/ports?sort_key=name&limit=2", headers=site_headers).json()
    assert [p["name"] for p in first["ports"]] == ["p0", "p1"]
    following = first["ports_links"][0]
    assert following["rel"] == "next"
    second = site_client.get(following["href"], headers=site_headers).json()
    assert [p["name"] for p in second["ports"]] == ["p2", "p3"]

    bad_queries = [
        "colour=red",
        "limit=-1",
        "limit=x",
        "sort_key=nope",
        "sort_dir=up&sort_key=name",
        "admin_state_up=maybe",
        "fixed_ips=nonsense",
        "binding:profile=x",
        "marker=nope",
    ]
    for bad in bad_queries:
        response = site_client.get(f"{NET}/ports?{bad}", headers=site_headers)
        assert response.status_code in (400, 404), (bad, response.text)
        assert "NeutronError" in response.json()


def test_bad_input_answers_neutron_errors(site_client: TestClient, site_headers: Headers) -> None:
    created, existing = network_with_subnet(site_client, site_headers)
    net_id, subnet_id = created["id"], existing["id"]
    nobody = "00000000-0000-0000-0000-000000000000"

    def subnet(**extra: Any) -> dict[str, Any]:
        return {"subnet": {"network_id": net_id, "cidr": "10.6.0.0/24", **extra}}

    def port(**extra: Any) -> dict[str, Any]:
        return {"port": {"network_id": net_id, **extra}}

    def pools(*ranges: tuple[str, str]) -> list[dict[str, str]]:
        return [{"start": f"10.6.0.{low}", "end": f"10.6.0.{high}"} for low, high in ranges]

    flat_with_segment = {"provider:network_type": "flat", "provider:segmentation_id": 3}
    cases: list[tuple[str, str, Any, int]] = [
        ("POST", "networks", {"network": {"admin_state_up": "maybe"}}, 400),
        ("POST", "networks", {"network": {"colour": "red"}}, 400),
        ("POST", "networks", {"network": {"status": "DOWN"}}, 400),
        ("POST", "networks", {"network": {"mtu": 9000}}, 400),
        ("POST", "networks", {"networks": {}}, 400),
        ("POST", "networks", ["network"], 400),
        ("POST", "networks", {"network": "x"}, 400),
        ("POST", "networks", {"network": flat_with_segment}, 400),
        ("POST", "subnets", subnet(cidr="10.5.0.5/24"), 400),
        ("POST", "subnets", subnet(cidr="banana"), 400),
        ("POST", "subnets", subnet(ip_version=6), 400),
        ("POST", "subnets", subnet(gateway_ip="10.7.0.1"), 400),
        ("POST", "subnets", subnet(allocation_pools=pools(("10", "5"))), 400),
        ("POST", "subnets", subnet(allocation_pools=pools(("2", "9"), ("5", "20"))), 400),
        ("POST", "subnets", subnet(allocation_pools=pools(("1", "9"))), 409),
        ("POST", "subnets", subnet(cidr="10.6.0.0/32"), 400),
        ("POST", "subnets", subnet(ipv6_ra_mode="slaac"), 400),
        ("POST", "subnets", subnet(network_id="not-a-uuid"), 400),
        ("POST", "subnets", subnet(network_id=nobody), 404),
        ("POST", "subnets", {"subnet": {"cidr": "10.6.0.0/24"}}, 400),
        ("POST", "ports", port(fixed_ips="10.0.0.9"), 400),
        (
            "POST",
            "ports",
            port(fixed_ips=[{"subnet_id": subnet_id, "ip_address": "10.0.0.255"}]),
            400,
        ),
        ("POST", "ports", port(fixed_ips=[{"foo": 1}]), 400),
        ("POST", "ports", port(mac_address="01:00:5e:00:00:01"), 400),
        ("POST", "ports", port(security_groups=[nobody]), 404),
        (
            "POST",
            "ports",
            port(port_security_enabled=False, allowed_address_pairs=[{"ip_address": "10.0.0.50"}]),
            409,
        ),
        ("POST", "routers", {"router": {"routes": []}}, 400),
        ("POST", "routers", {"router": {"external_gateway_info": {"network_id": net_id}}}, 400),
        ("POST", "routers", {"router": {"external_gateway_info": {"nope": 1}}}, 400),
        ("POST", "floatingips", {"floatingip": {}}, 400),
        ("PUT", f"networks/{net_id}", {"network": {"provider:segmentation_id": 9}}, 400),
        ("PUT", f"networks/{net_id}", {"network": {"id": "x"}}, 400),
        ("PUT", f"networks/{net_id}/tags", {"tags": [""]}, 400),
        ("PUT", f"networks/{net_id}/tags", {"labels": []}, 400),
        ("PUT", f"routers/{nobody}/add_router_interface", {"subnet_id": subnet_id}, 404),
        ("DELETE", "ports/nope", None, 404),
        ("GET", "floatingips/nope", None, 404),
    ]
    for method, path, body, status in cases:
        response = site_client.request(method, f"{NET}/{path}", headers=site_headers, json=body)
        neutron_error(response, status)
    raw = site_client.post(
        f"{NET}/networks",
        headers={**site_headers, "Content-Type": "application/json"},
        content=b'{"network": ',
    )
    neutron_error(raw, 400)
    binary = site_client.post(
        f"{NET}/networks",
        headers={**site_headers, "Content-Type": "application/json"},
        content=b"\xff\xfe",
    )
    neutron_error(binary, 400)


def test_compute_port_functions(
    site: Region, site_client: TestClient, site_headers: Headers, member: Tenant
) -> None:
    private, _ = network_with_subnet(site_client, site_headers)
    shared, subnet = network_with_subnet(site_client, site_headers, shared=True)
    with pytest.raises(SimError) as hidden:
        network.create_port(
            site,
            member.project_id,
            private["id"],
            device_id="vm-1",
            device_owner="compute:nova",
            host="site-a-host-1",
        )
    assert hidden.value.status == 404
    made = network.create_port(
        site,
        member.project_id,
        shared["id"],
        device_id="vm-1",
        device_owner="compute:nova",
        host="site-a-host-1",
        name="eth0",
    )
    assert made["binding:host_id"] == "site-a-host-1"
    assert made["binding:vif_type"] == "ovs"
    assert made["status"] == "ACTIVE"
    assert made["project_id"] == member.project_id
    assert "_created_by" not in made
    assert network.network_name(site, shared["id"]) == "net"

    user_port = create(site_client, member.headers, "ports", network_id=shared["id"])
    bound = network.bind_port(
        site,
        user_port["id"],
        project_id=member.project_id,
        device_id="vm-1",
        device_owner="compute:nova",
        host="site-a-host-2",
    )
    assert bound["device_id"] == "vm-1"
    with pytest.raises(SimError) as busy:
        network.bind_port(
            site,
            user_port["id"],
            project_id=None,
            device_id="vm-2",
            device_owner="compute:nova",
            host="h",
        )
    assert busy.value.status == 409
    with pytest.raises(SimError) as foreign:
        network.bind_port(
            site,
            user_port["id"],
            project_id="other",
            device_id="vm-1",
            device_owner="compute:nova",
            host="h",
        )
    assert foreign.value.status == 404
    assert {p["id"] for p in network.ports_of(site, "vm-1")} == {made["id"], user_port["id"]}

    network.unbind_ports(site, "vm-1")
    assert network.ports_of(site, "vm-1") == []
    kept = site_client.get(f"{NET}/ports/{user_port['id']}", headers=site_headers).json()["port"]
    assert (kept["device_id"], kept["binding:vif_type"], kept["status"]) == ("", "unbound", "DOWN")
    neutron_error(site_client.get(f"{NET}/ports/{made['id']}", headers=site_headers), 404)
    addresses = site.state.taken(f"ip:{subnet['id']}")
    assert made["fixed_ips"][0]["ip_address"] not in addresses
    with pytest.raises(SimError):
        network.network_name(site, "missing")
