"""The region's L2 population on the memory dataplane: ``/v2.0/agents`` names each compute
host's tunnel endpoint, a server booted on a VXLAN network becomes a fabric port at its host
and a remote port (``binding:profile`` ``tunnel_ip``) a neighbour entry on every member host,
as ``/sim/v1/dataplane`` shows them."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cascade_sim.region import Region
from tests.conftest import make_tenant
from tests.sim.test_network import NET, Headers, neutron_error


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
