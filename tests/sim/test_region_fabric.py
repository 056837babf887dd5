"""The region's L2 population on the memory dataplane: ``/v2.0/agents`` names each compute
host's tunnel endpoint, a server booted on a VXLAN network becomes a fabric port at its host
and a remote port (``binding:profile`` ``tunnel_ip``) a neighbour entry on every member host,
as ``/sim/v1/dataplane`` shows them; security group rules and memberships follow; and
``cascade site-sim`` refuses a dataplane it cannot run in one line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cascade_sim.region import Region
from tests.cli.test_cli import assert_one_line_error, cascade
from tests.conftest import make_tenant
from tests.sim.conftest import upload_image
from tests.sim.test_compute import NOVA, boot
from tests.sim.test_network import NET, Headers, create, neutron_error


def test_agents_name_each_host_and_its_tunnel_endpoint(
    site_client: TestClient, site_headers: Headers, site: Region
) -> None:
    agents = site_client.get(f"{NET}/agents", headers=site_headers).json()["agents"]
    assert {a["host"]: a["configurations"]["tunneling_ip"] for a in agents} == {
        h.name: h.tunnel_ip for h in site.hosts
    }
    for agent in agents:
        assert agent["agent_type"] == "Open vSwitch agent"
        assert agent["binary"] == "neutron-openvswitch-agent"
        assert agent["alive"] is True
        assert agent["admin_state_up"] is True
        assert agent["configurations"]["tunnel_types"] == ["vxlan"]
        assert agent["configurations"]["l2_population"] is True
    first = site.hosts[0]
    only = site_client.get(
        f"{NET}/agents", params={"host": first.name, "fields": "host"}, headers=site_headers
    ).json()["agents"]
    assert only == [{"host": first.name}]
    none = site_client.get(f"{NET}/agents", params={"alive": "false"}, headers=site_headers)
    assert none.json()["agents"] == []
    shown = site_client.get(f"{NET}/agents/{agents[0]['id']}", headers=site_headers).json()
    assert shown["agent"] == agents[0]
    neutron_error(site_client.get(f"{NET}/agents/nope", headers=site_headers), 404)
    neutron_error(site_client.get(f"{NET}/agents?configurations=x", headers=site_headers), 400)
    member = make_tenant(site_client, site_headers["X-Auth-Token"])
    member_headers = {"X-Auth-Token": member.token}
    neutron_error(site_client.get(f"{NET}/agents", headers=member_headers), 403)
    read_only = site_client.put(f"{NET}/agents/{agents[0]['id']}", headers=site_headers)
    assert read_only.status_code == 405


def dataplane(client: TestClient, headers: Headers) -> dict[str, Any]:
    answer = client.get("/sim/v1/dataplane", headers=headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def until(
    client: TestClient, headers: Headers, condition: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The dataplane view once ``condition`` holds (every host converged, no rules
    pending), within 20 s."""
    deadline = time.monotonic() + 20
    while True:
        view = dataplane(client, headers)
        settled = not view["rules_pending"] and all(host["converged"] for host in view["hosts"])
        if condition(view) and settled:
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.05)


def neighbours_at(view: dict[str, Any], host: str, network_id: str) -> dict[str, dict[str, Any]]:
    (found,) = [h for h in view["hosts"] if h["name"] == host]
    for network in found["networks"]:
        if network["id"] == network_id:
            return {n["port_id"]: n for n in network["neighbours"]}
    return {}


def server_port(client: TestClient, headers: Headers, server_id: str) -> dict[str, Any]:
    (port,) = client.get(f"{NET}/ports", params={"device_id": server_id}, headers=headers).json()[
        "ports"
    ]
    return dict(port)


def test_servers_become_fabric_ports_and_remote_ports_neighbours(
    site_client: TestClient, site_headers: Headers
) -> None:
    net = create(site_client, site_headers, "networks", name="stretched")
    create(
        site_client, site_headers, "subnets", network_id=net["id"], cidr="10.7.0.0/24", ip_version=4
    )
    assert dataplane(site_client, site_headers)["dataplane"] == "memory"
    image = upload_image(site_client, site_headers)
    on_net = {"imageRef": image, "networks": [{"uuid": net["id"]}]}
    servers = [boot(site_client, site_headers, **on_net) for _ in range(3)]
    ports = [server_port(site_client, site_headers, server) for server in servers]
    bound = {port["id"]: port["binding:host_id"] for port in ports}
    view = until(site_client, site_headers, lambda v: {p["id"] for p in v["ports"]} >= set(bound))
    held = {p["id"]: p for p in view["ports"]}
    for port in ports:
        assert held[port["id"]]["host"] == port["binding:host_id"]
        assert held[port["id"]]["mac"] == port["mac_address"]
        assert held[port["id"]]["ip"] == port["fixed_ips"][0]["ip_address"]
        assert held[port["id"]]["port_security"] is True
        # the default group admits ingress from its members: one rule per member address
        ingress = [r for r in held[port["id"]]["security_rules"] if r["direction"] == "ingress"]
        assert {r["remote_ip_prefix"] for r in ingress} == {
            f"{p['fixed_ips'][0]['ip_address']}/32" for p in ports
        }
    members = set(bound.values())

    remote = create(
        site_client,
        site_headers,
        "ports",
        network_id=net["id"],
        mac_address="fa:16:3e:0a:0b:0c",
        fixed_ips=[{"ip_address": "10.7.0.200"}],
        device_owner="compute:shadow",
        **{"binding:profile": {"tunnel_ip": "203.0.113.7"}},
    )
    expected = {"mac": "fa:16:3e:0a:0b:0c", "ip": "10.7.0.200", "vtep": "203.0.113.7"}

    def everywhere(view: dict[str, Any]) -> bool:
        tables = [neighbours_at(view, host, net["id"]) for host in members]
        return all(
            table.get(remote["id"], {}) == {"port_id": remote["id"], **expected} for table in tables
        )

    view = until(site_client, site_headers, everywhere)
    assert remote["id"] not in {p["id"] for p in view["ports"]}  # no host here holds it
    for host in {h["name"] for h in view["hosts"]} - members:
        assert neighbours_at(view, host, net["id"]) == {}

    moved = site_client.put(
        f"{NET}/ports/{remote['id']}",
        headers=site_headers,
        json={"port": {"binding:profile": {"tunnel_ip": "203.0.113.8"}}},
    )
    assert moved.status_code == 200, moved.text
    until(
        site_client,
        site_headers,
        lambda v: all(
            neighbours_at(v, host, net["id"]).get(remote["id"], {}).get("vtep") == "203.0.113.8"
            for host in members
        ),
    )
    assert (
        site_client.delete(f"{NET}/ports/{remote['id']}", headers=site_headers).status_code == 204
    )
    until(
        site_client,
        site_headers,
        lambda v: all(remote["id"] not in neighbours_at(v, host, net["id"]) for host in members),
    )

    group = ports[0]["security_groups"][0]
    ssh = {"security_group_id": group, "direction": "ingress", "protocol": "tcp"}
    create(
        site_client,
        site_headers,
        "security-group-rules",
        **ssh,
        port_range_min=22,
        port_range_max=22,
    )
    rule = {"direction": "ingress", "protocol": "tcp", "port_min": 22, "port_max": 22}
    until(site_client, site_headers, lambda v: all(rule in p["security_rules"] for p in v["ports"]))

    readdressed = site_client.put(
        f"{NET}/ports/{ports[1]['id']}",
        headers=site_headers,
        json={"port": {"fixed_ips": [{"ip_address": "10.7.0.77"}]}},
    )
    assert readdressed.status_code == 200, readdressed.text
    view = until(
        site_client,
        site_headers,
        lambda v: {p["id"]: p["ip"] for p in v["ports"]}.get(ports[1]["id"]) == "10.7.0.77",
    )
    for port in view["ports"]:  # every member admits the new address, no longer the old one
        prefixes = {r.get("remote_ip_prefix") for r in port["security_rules"]}
        assert "10.7.0.77/32" in prefixes
        assert f"{ports[1]['fixed_ips'][0]['ip_address']}/32" not in prefixes

    gone, kept = servers[0], ports[1:]
    assert site_client.delete(f"{NOVA}/servers/{gone}", headers=site_headers).status_code == 204
    view = until(
        site_client, site_headers, lambda v: ports[0]["id"] not in {p["id"] for p in v["ports"]}
    )
    assert {p["id"] for p in view["ports"]} == {p["id"] for p in kept}
    for port in kept:  # the others' rules lost the gone server's address
        (held_port,) = [p for p in view["ports"] if p["id"] == port["id"]]
        prefixes = {r.get("remote_ip_prefix") for r in held_port["security_rules"]}
        assert f"{ports[0]['fixed_ips'][0]['ip_address']}/32" not in prefixes


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--dataplane", "ovs"], "--dataplane takes memory or linux, got 'ovs'"),
        (["--underlay", "ns/br0"], "--underlay needs --dataplane linux"),
        (["--dataplane", "linux", "--underlay", "br0"], "--underlay takes NETNS/BRIDGE"),
    ],
)
def test_bad_dataplane_flags_are_one_line_and_write_nothing(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    data_dir = tmp_path / "site"
    done = cascade("site-sim", "--name", "x", "--data-dir", str(data_dir), *flags)
    assert_one_line_error(done, message)
    assert not data_dir.exists()


def test_linux_dataplane_needs_root_and_an_underlay_bridge(tmp_path: Path) -> None:
    """As a user without root (root drops to nobody for it), then as root with a bridge that
    is not there."""
    data_dir = tmp_path / "site"
    linux = ["site-sim", "--name", "x", "--data-dir", str(data_dir), "--dataplane", "linux"]
    if os.geteuid() == 0:
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        done = subprocess.run(
            [*nobody, sys.executable, "-m", "cascade", *linux],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    else:
        done = cascade(*linux)
    assert_one_line_error(done, "--dataplane linux needs root")
    if os.geteuid() == 0:
        missing = cascade(*linux, "--underlay", "/cascade-no-br")
        assert_one_line_error(missing, "underlay: no bridge 'cascade-no-br' in the root namespace")
        gone = cascade(*linux, "--underlay", "cascade-no-ns/br0")
        assert_one_line_error(gone, "network namespace 'cascade-no-ns' does not exist")
    assert not data_dir.exists()
