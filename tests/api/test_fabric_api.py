"""``/v1/fabric`` through the in-process app: hosts, networks and ports, published through
the app's controller on the in-process bus to agents running on the app's own event loop,
and what the API says about their convergence; bad input and non-admins are refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal
from fastapi.testclient import TestClient
from pydantic import ValidationError

from cascade.api.app import create_app
from cascade.config import Settings
from cascade.errors import Unavailable
from cascade.fabric.agent import Agent
from cascade.fabric.controller import FabricController
from cascade.fabric.dataplane.memory import MemoryDataplane
from cascade.services import Services
from tests.conftest import make_tenant

HOSTS = {"h1": "192.0.2.1", "h2": "192.0.2.2"}


@pytest.fixture
def admin(admin_token: str) -> dict[str, str]:
    return {"X-Auth-Token": admin_token}


def portal(client: TestClient) -> BlockingPortal:
    """The app's event loop (the test client's portal, alive inside ``with TestClient``)."""
    assert client.portal is not None
    return client.portal


def controller(client: TestClient) -> FabricController:
    app: Any = client.app
    found: FabricController = app.state.fabric
    return found


def setup_fabric(client: TestClient, admin: dict[str, str]) -> None:
    for name, tunnel_ip in HOSTS.items():
        response = client.post(
            "/v1/fabric/hosts", json={"name": name, "tunnel_ip": tunnel_ip}, headers=admin
        )
        assert response.status_code == 201, response.text
        assert response.json()["host"] == {
            "name": name,
            "tunnel_ip": tunnel_ip,
            "revision": 0,
            "applied_revision": 0,
            "networks_behind": 0,
            "converged": True,
            "acked_at": None,
            "enforces_rules": False,
            "ports_with_rules": 0,
            "rules_enforced": True,
        }
    created = client.post(
        "/v1/fabric/networks", json={"id": "n1", "vni": 5001, "cidr": "10.1.0.0/16"}, headers=admin
    )
    assert created.status_code == 201, created.text
    assert created.json() == {
        "network": {"id": "n1", "vni": 5001, "cidr": "10.1.0.0/16", "revision": 0}
    }


def port(number: int, host: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"p{number}",
        "network_id": "n1",
        "host": host,
        "mac": f"02:00:00:00:00:{number:02x}",
        "ip": f"10.1.0.{number}",
        **extra,
    }


@pytest.fixture
def agents(client: TestClient, admin: dict[str, str]) -> Iterator[dict[str, Agent]]:
    """The hosts and network registered, then one agent per host on the app's bus, started
    (and stopped) on the app's event loop."""
    setup_fabric(client, admin)
    transport = controller(client).transport
    started = {name: Agent(name, transport, MemoryDataplane(ip)) for name, ip in HOSTS.items()}
    for agent in started.values():
        portal(client).call(agent.start)
    yield started
    for agent in started.values():
        portal(client).call(agent.stop)


def test_ports_converge_on_agents_of_the_apps_bus(
    client: TestClient, admin: dict[str, str], agents: dict[str, Agent]
) -> None:
    rule = {"direction": "ingress", "protocol": "tcp", "port_min": 22, "port_max": 22}
    first = client.post(
        "/v1/fabric/ports?wait=10", json=port(1, "h1", security_rules=[rule]), headers=admin
    )
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["pending_hosts"] == 0
    assert (body["network_revision"], body["host_revision"]) == (1, 1)
    assert body["port"]["id"] == "p1"
    assert body["port"]["security_rules"][0]["port_min"] == 22
    # acknowledged, but no dataplane enforces rules: the answer says so
    assert (body["rules_enforced"], body["hosts_not_enforcing_rules"]) == (False, 1)

    second = client.post("/v1/fabric/ports", params={"wait": 10}, json=port(2, "h2"), headers=admin)
    assert second.status_code == 201, second.text
    assert second.json()["pending_hosts"] == 0  # h2's port, and h1's neighbour table
    assert second.json()["rules_enforced"] is True  # it has no rules
    assert set(agents["h1"].dataplane.neighbours("n1")) == {"p1", "p2"}
    assert set(agents["h2"].dataplane.ports()) == {"p2"}

    listed = client.get("/v1/fabric/hosts", headers=admin)
    assert listed.status_code == 200, listed.text
    hosts = listed.json()
    assert (hosts["converged"], hosts["lagging"], hosts["rules_not_enforced"]) == (2, 0, 1)
    assert [h["name"] for h in hosts["hosts"]] == ["h1", "h2"]
    for host in hosts["hosts"]:
        assert host["converged"] is True
        assert host["revision"] == host["applied_revision"] == 1
        assert host["networks_behind"] == 0
        assert host["acked_at"] is not None
        assert host["enforces_rules"] is False
    rules = {h["name"]: (h["ports_with_rules"], h["rules_enforced"]) for h in hosts["hosts"]}
    assert rules == {"h1": (1, False), "h2": (0, True)}
    assert client.get("/v1/fabric/hosts?lagging=true", headers=admin).json()["hosts"] == []

    removed = client.delete("/v1/fabric/ports/p1?wait=10", headers=admin)
    assert removed.status_code == 200, removed.text
    assert removed.json() == {"network_revision": 3, "host_revision": 2, "pending_hosts": 0}
    assert set(agents["h2"].dataplane.neighbours("n1")) == {"p2"}
    assert not agents["h1"].dataplane.ports()
    assert client.get("/v1/fabric/hosts", headers=admin).json()["rules_not_enforced"] == 0


class EnforcingDataplane(MemoryDataplane):
    """A dataplane that declares it enforces rules: what a future enforcing one will say."""

    enforces_rules = True


def test_a_host_whose_dataplane_enforces_rules_is_converged_for_them(
    client: TestClient, admin: dict[str, str]
) -> None:
    setup_fabric(client, admin)
    transport = controller(client).transport
    planes = {"h1": EnforcingDataplane(HOSTS["h1"]), "h2": MemoryDataplane(HOSTS["h2"])}
    started = [Agent(name, transport, plane) for name, plane in planes.items()]
    for agent in started:
        portal(client).call(agent.start)
    try:
        rule = {"direction": "egress", "protocol": "any"}
        enforced = client.post(
            "/v1/fabric/ports?wait=10", json=port(1, "h1", security_rules=[rule]), headers=admin
        ).json()
        assert (enforced["pending_hosts"], enforced["rules_enforced"]) == (0, True)
        not_enforced = client.post(
            "/v1/fabric/ports?wait=10", json=port(2, "h2", security_rules=[rule]), headers=admin
        ).json()
        assert (not_enforced["pending_hosts"], not_enforced["rules_enforced"]) == (0, False)
        hosts = client.get("/v1/fabric/hosts", headers=admin).json()
        flags = {h["name"]: (h["enforces_rules"], h["rules_enforced"]) for h in hosts["hosts"]}
        assert flags == {"h1": (True, True), "h2": (False, False)}
        assert hosts["rules_not_enforced"] == 1
    finally:
        for agent in started:
            portal(client).call(agent.stop)


def test_without_agents_the_change_stays_pending_and_the_host_lags(
    client: TestClient, admin: dict[str, str]
) -> None:
    setup_fabric(client, admin)
    added = client.post("/v1/fabric/ports?wait=0.5", json=port(1, "h1"), headers=admin)
    assert added.status_code == 201, added.text
    assert added.json()["pending_hosts"] >= 1
    at_once = client.post("/v1/fabric/ports", json=port(2, "h2"), headers=admin)
    assert at_once.json()["pending_hosts"] >= 1

    lagging = client.get("/v1/fabric/hosts?lagging=true", headers=admin).json()
    assert [h["name"] for h in lagging["hosts"]] == ["h1", "h2"]
    assert lagging["hosts"][0]["converged"] is False
    assert (lagging["converged"], lagging["lagging"]) == (0, 2)
    limited = client.get("/v1/fabric/hosts", params={"limit": 1}, headers=admin).json()
    assert len(limited["hosts"]) == 1
    assert (limited["converged"], limited["lagging"]) == (0, 2)  # counts cover every host

    busy = client.delete("/v1/fabric/networks/n1", headers=admin)
    assert busy.status_code == 409
    assert "ports" in busy.json()["error"]["message"]
    for name in ("p1", "p2"):
        assert client.delete(f"/v1/fabric/ports/{name}", headers=admin).status_code == 200
    assert client.delete("/v1/fabric/networks/n1", headers=admin).status_code == 204
    assert client.delete("/v1/fabric/networks/n1", headers=admin).status_code == 404


def _error(response: Any, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status
    assert error["title"]
    assert fragment in error["message"], error["message"]


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/v1/fabric/hosts", {"name": "h9", "tunnel_ip": "nope"}, 400, "tunnel_ip"),
        ("/v1/fabric/hosts", {"name": "h.9", "tunnel_ip": "192.0.2.9"}, 400, "name"),
        ("/v1/fabric/hosts", {"name": "h1", "tunnel_ip": "192.0.2.99"}, 409, "h1"),
        ("/v1/fabric/networks", {"id": "n2", "vni": 0, "cidr": "10.2.0.0/16"}, 400, "vni"),
        ("/v1/fabric/networks", {"id": "n2", "vni": 2**24, "cidr": "10.2.0.0/16"}, 400, "vni"),
        ("/v1/fabric/networks", {"id": "n2", "vni": 5002, "cidr": "10.2.0.0/99"}, 400, "cidr"),
        ("/v1/fabric/networks", {"id": "n2", "vni": 5001, "cidr": "10.2.0.0/16"}, 409, "vni"),
        ("/v1/fabric/networks", {"id": "n1", "vni": 5003, "cidr": "10.2.0.0/16"}, 409, "n1"),
        ("/v1/fabric/ports", port(3, "h1", mac="02:00:00:00:00:ZZ"), 400, "mac"),
        ("/v1/fabric/ports", port(3, "h1", ip="10.9.0.3"), 400, "outside"),
        ("/v1/fabric/ports", port(3, "h1", ip="not-an-ip"), 400, "ip"),
        ("/v1/fabric/ports", port(3, "h1", network_id="n9"), 404, "n9"),
        ("/v1/fabric/ports", port(3, "h9"), 404, "h9"),
        ("/v1/fabric/ports", port(1, "h2", mac="02:00:00:00:00:fe", ip="10.1.0.254"), 409, "p1"),
        ("/v1/fabric/ports", {**port(3, "h1"), "mac": "02:00:00:00:00:01"}, 409, "mac"),
        (
            "/v1/fabric/ports",
            port(3, "h1", security_rules=[{"direction": "sideways", "protocol": "tcp"}]),
            400,
            "direction",
        ),
        (
            "/v1/fabric/ports",
            port(
                3,
                "h1",
                security_rules=[
                    {"direction": "ingress", "protocol": "tcp", "port_min": 90, "port_max": 80}
                ],
            ),
            400,
            "port_max",
        ),
        ("/v1/fabric/ports", {**port(3, "h1"), "extra": 1}, 400, "extra"),
    ],
)
def test_bad_input_is_refused_in_keystones_shape(
    client: TestClient,
    admin: dict[str, str],
    path: str,
    body: dict[str, Any],
    status: int,
    fragment: str,
) -> None:
    setup_fabric(client, admin)
    assert client.post("/v1/fabric/ports", json=port(1, "h1"), headers=admin).status_code == 201
    _error(client.post(path, json=body, headers=admin), status, fragment)


def test_bad_query_and_unknown_port(client: TestClient, admin: dict[str, str]) -> None:
    _error(client.get("/v1/fabric/hosts?limit=0", headers=admin), 400, "limit")
    _error(client.get("/v1/fabric/hosts?limit=10001", headers=admin), 400, "limit")
    _error(client.delete("/v1/fabric/ports/p1?wait=301", headers=admin), 400, "wait")
    _error(client.delete("/v1/fabric/ports/p1", headers=admin), 404, "p1")
    _error(client.delete("/v1/fabric/networks/n9", headers=admin), 404, "n9")


def test_members_and_anonymous_callers_are_refused(client: TestClient, admin_token: str) -> None:
    member = make_tenant(client, admin_token).headers
    calls = [
        ("GET", "/v1/fabric/hosts", None),
        ("POST", "/v1/fabric/hosts", {"name": "h1", "tunnel_ip": "192.0.2.1"}),
        ("POST", "/v1/fabric/networks", {"id": "n1", "vni": 5001, "cidr": "10.1.0.0/16"}),
        ("DELETE", "/v1/fabric/networks/n1", None),
        ("POST", "/v1/fabric/ports", port(1, "h1")),
        ("DELETE", "/v1/fabric/ports/p1", None),
    ]
    for method, path, body in calls:
        refused = client.request(method, path, json=body, headers=member)
        _error(refused, 403, "")
        assert client.request(method, path, json=body).status_code == 401
    admin = {"X-Auth-Token": admin_token}
    assert client.get("/v1/fabric/hosts", headers=admin).json()["hosts"] == []


def test_startup_fails_when_nats_cannot_be_reached(services: Services) -> None:
    services.settings.fabric_url = "nats://127.0.0.1:1"
    app = create_app(services)
    with (
        pytest.raises(Unavailable, match=r"cannot connect to NATS at nats://127\.0\.0\.1:1"),
        TestClient(app),
    ):
        pass


@pytest.mark.parametrize(
    ("url", "valid"),
    [
        ("memory", True),
        ("nats://127.0.0.1:4222", True),
        ("nats://nats.example", True),
        ("nats://nats.example:notaport", False),
        ("nats://", False),
        ("http://nats.example:4222", False),
        ("memroy", False),
        ("nats://nats.example:4222/path", False),
    ],
)
def test_fabric_url_is_memory_or_a_nats_url(url: str, valid: bool) -> None:
    if valid:
        assert Settings(fabric_url=url).fabric_url == url
    else:
        with pytest.raises(ValidationError, match="nats://host:port"):
            Settings(fabric_url=url)
