"""Restores onto a network that spans sites, against real site-sims and a real worker: a VNF
of two servers on a Cascade network stretched over sites A and B, a service IP held by the
first, checkpointed; site A SIGKILLed. A restore at a site the network does not span is a 400
naming both, before anything starts. A restore failing on a corrupted chunk, and one failing
when the target refuses to boot the servers, leave no volume nor server at the target (the
ports go back to the source servers). Then the restore at B: the servers ACTIVE there with
the addresses and MACs they had at A, one port per address at B, their data verified, the
remote ports of both at the lost A named as not re-pointed (tried at once, each failing),
and the service IP moved to the restored first server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from cascade.cli.embedded import EmbeddedSite
from cascade.sites.driver import SiteDriver
from tests.engine.conftest import WorkerFactory, register, start_site, wait_operation
from tests.network.test_networks import create_network
from tests.network.test_service_ips import holders
from tests.protection.vnf import available_checkpoint, make_vnf, protect, sim_admin, volume_data

BLOCK = 4 << 20
BEFORE, AFTER = b"before-the-checkpoint", b"after-the-checkpoint-"
ADDRESS = "10.81.0.100"


def _restore(client: TestClient, token: str, **body: Any) -> tuple[int, dict[str, Any]]:
    response = client.post("/v1/restores", headers={"X-Auth-Token": token}, json=body)
    return response.status_code, response.json()


def _get(client: TestClient, token: str, path: str, key: str) -> Any:
    response = client.get(path, headers={"X-Auth-Token": token})
    assert response.status_code == 200, response.text
    return response.json()[key]


def _restored(client: TestClient, token: str, **body: Any) -> dict[str, Any]:
    status, accepted = _restore(client, token, **body)
    assert status == 202, accepted
    wait_operation(client, token, accepted["operation"]["id"], timeout=240)
    return dict(_get(client, token, f"/v1/restores/{accepted['restore']['id']}", "restore"))


def _at_target(site: EmbeddedSite) -> tuple[list[str], list[Any]]:
    """(the names of the restores' volumes, the ports) at the site."""

    def look(c: Any) -> tuple[list[str], list[Any]]:
        volumes = [v.name for v in c.block_storage.volumes() if v.name.startswith("cascade-")]
        return volumes, list(c.network.ports())

    result: tuple[list[str], list[Any]] = SiteDriver(site.access()).call("look", look)
    return result


def _with_address(ports: list[Any], ip: str) -> list[Any]:
    return [p for p in ports if any(f["ip_address"] == ip for f in p.fixed_ips)]


def _assert_nothing_left(site: EmbeddedSite, servers: list[dict[str, Any]], before: int) -> None:
    """No restore volume at the site, its servers as before, and each source port's address
    held there by its remote port alone, as before the restore."""
    volumes, ports = _at_target(site)
    assert volumes == []
    names = SiteDriver(site.access()).call("servers", lambda c: list(c.compute.servers()))
    assert len(names) == before
    for server in servers:
        held = _with_address(ports, server["port"]["ip"])
        assert [p.name for p in held] == [f"cascade-remote-{server['port']['id']}"]


def test_a_vnf_on_a_stretched_network_is_restored_with_its_addresses_and_service_ip(
    client: TestClient,
    admin_token: str,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    start_worker("w1", CASCADE_SITE_CALL_DEADLINE="3")
    site_a, site_b = two_sites
    headers = {"X-Auth-Token": admin_token}
    create_network(client, admin_token, "vnf-net", "10.81.0.0/24", ["site-a", "site-b"])
    create_network(client, admin_token, "a-only", "10.82.0.0/24", ["site-a"])
    servers = make_vnf(client, admin_token, site_a, 2, port={"network": "vnf-net"})
    response = client.post(
        "/v1/service-ips",
        headers=headers,
        json={"network": "vnf-net", "holder": servers[0]["id"], "address": ADDRESS},
    )
    assert response.status_code == 202, response.text
    sip_id = response.json()["service_ip"]["id"]
    assert wait_operation(client, admin_token, response.json()["operation"]["id"])["status"] == (
        "succeeded"
    )
    assert holders(site_b, ADDRESS) == [f"cascade-remote-{servers[0]['port']['id']}"]

    store = tmp_path / "chunks"
    plan = protect(client, admin_token, servers, "site-b", chunk_store=store.as_uri())
    data = {m["server"]: m["volumes"][0] for m in plan["members"]}
    for volume_id in data.values():
        volume_data(site_a, volume_id, 3 * BLOCK, BEFORE + volume_id.encode())
    checkpoint = available_checkpoint(client, admin_token, plan["id"])
    for volume_id in data.values():
        volume_data(site_a, volume_id, 3 * BLOCK, AFTER + volume_id.encode())
    site_c = start_site("site-c", tmp_path)
    try:
        register(client, admin_token, site_c)
        site_a.kill()  # site A is lost

        # Before anything starts: the network does not span the target, or the one mapped.
        status, body = _restore(
            client, admin_token, checkpoint=checkpoint["id"], target_site="site-c"
        )
        assert status == 400, body
        assert "network vnf-net does not span site site-c" in body["error"]["message"]
        status, body = _restore(
            client,
            admin_token,
            checkpoint=checkpoint["id"],
            mapping={"networks": {"vnf-net": "a-only"}},
        )
        assert status == 400, body
        assert "network a-only does not span site site-b" in body["error"]["message"]
        for wrong, message in (
            ({"service_ip": "no-such-ip"}, "Unknown service IP 'no-such-ip'"),
            ({"service_ip": sip_id, "service_ip_to": "vnf-9"}, "'vnf-9' names no single server"),
            ({"service_ip_to": "vnf-0"}, "give service_ip"),
        ):
            status, body = _restore(client, admin_token, checkpoint=checkpoint["id"], **wrong)
            assert status == 400, body
            assert message in body["error"]["message"]
        assert _get(client, admin_token, "/v1/restores", "restores") == []
    finally:
        site_c.stop()
    _, before_ports = _at_target(site_b)
    servers_at_b = 0

    # A corrupted chunk: the restore fails naming it, and leaves nothing at B.
    victim = next(p for p in sorted(store.rglob("*")) if p.is_file())
    good = victim.read_bytes()
    victim.write_bytes(b"not what it was")
    failed = _restored(client, admin_token, checkpoint=checkpoint["id"], service_ip=sip_id)
    assert failed["status"] == "failed", failed
    assert f"chunk {victim.parent.name}{victim.name}" in failed["error"]
    assert failed["cleanup"]["volumes"], failed  # it had made at least that volume
    assert failed["servers"] == {}
    _assert_nothing_left(site_b, servers, servers_at_b)
    victim.write_bytes(good)

    # B refuses to boot them: the servers and ports it made go too, the ports back to A's.
    sim_admin(
        site_b,
        "PUT",
        "/faults",
        route_errors=[
            {"method": "POST", "path_prefix": "/compute/v2.1/servers", "rate": 1, "status": 400}
        ],
    )
    failed = _restored(client, admin_token, checkpoint=checkpoint["id"], service_ip=sip_id)
    sim_admin(site_b, "DELETE", "/faults")
    assert failed["status"] == "failed", failed
    assert len(failed["cleanup"]["servers"]) == 2, failed
    assert len(failed["cleanup"]["volumes"]) == 2, failed
    assert failed["service_ip"]["status"] == "pending"
    _assert_nothing_left(site_b, servers, servers_at_b)
    for server in servers:
        shown = _get(client, admin_token, f"/v1/servers/{server['id']}", "server")
        assert shown["port"]["ip"] == server["port"]["ip"]
        assert shown["site"] == "site-a"

    restore = _restored(client, admin_token, checkpoint=checkpoint["id"], service_ip=sip_id)
    assert restore["status"] == "completed", restore
    assert restore["rto_s"] > 0
    assert all(v["verified"] for v in restore["volumes"].values())
    _, ports = _at_target(site_b)
    for server in servers:
        restored = _get(
            client, admin_token, f"/v1/servers/{restore['servers'][server['id']]}", "server"
        )
        assert (restored["status"], restored["site"]) == ("ACTIVE", "site-b")
        assert (restored["port"]["ip"], restored["port"]["mac"]) == (
            server["port"]["ip"],
            server["port"]["mac"],
        )
        assert restore["ports"][server["id"]]["ip"] == server["port"]["ip"]
        (held,) = _with_address(ports, server["port"]["ip"])  # one port per address at B
        assert (held.name, held.mac_address, held.device_id) == (
            f"cascade-{server['port']['id']}",
            server["port"]["mac"],
            restored["site_server_id"],
        )
        volume = restore["volumes"][data[server["id"]]]["volume"]
        read = volume_data(site_b, volume, 3 * BLOCK)
        assert read.startswith(BEFORE + data[server["id"]].encode())
    assert len(ports) >= len(before_ports)

    done = _get(client, admin_token, f"/v1/operations/{restore['operation']}", "operation")
    (lost,) = done["result"]["remote_ports_failed"].items()  # A, for each of the two ports
    assert lost[0] == "site-a", lost
    for server in servers:
        assert f"create remote port {server['port']['ip']} " in lost[1], lost
    moved = restore["service_ip"]
    assert (moved["status"], moved["holder_site"]) == ("moved", "site-b"), moved
    assert moved["holder"] == restore["servers"][servers[0]["id"]]
    assert list(moved["pending_sites"]) == ["site-a"]  # lost: freed there when it returns
    shown = _get(client, admin_token, f"/v1/service-ips/{sip_id}", "service_ip")
    assert (shown["holder"], shown["holder_site"]) == (moved["holder"], "site-b")
    assert holders(site_b, ADDRESS) == [f"cascade-{servers[0]['port']['id']}"]


def test_a_server_on_a_site_network_mapped_to_a_cascade_network_gets_a_port_there(
    client: TestClient,
    admin_token: str,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    start_worker("w1")
    site_a, site_b = two_sites
    SiteDriver(site_a.access()).call(
        "network", lambda c: c.network.create_network(name="plain-net")
    )
    create_network(client, admin_token, "vnf-net", "10.83.0.0/24", ["site-a", "site-b"])
    servers = make_vnf(client, admin_token, site_a, 1, network="plain-net")
    plan = protect(client, admin_token, servers, "site-b")
    checkpoint = available_checkpoint(client, admin_token, plan["id"])

    restore = _restored(
        client,
        admin_token,
        checkpoint=checkpoint["id"],
        mapping={"networks": {"plain-net": "vnf-net"}},
    )
    assert restore["status"] == "completed", restore
    restored = _get(
        client, admin_token, f"/v1/servers/{restore['servers'][servers[0]['id']]}", "server"
    )
    assert (restored["status"], restored["site"], restored["network"]) == (
        "ACTIVE",
        "site-b",
        None,
    )
    port = restored["port"]
    assert (port["network"], port["ip"]) == ("vnf-net", "10.83.0.2")  # the first after the gateway
    assert restore["ports"][servers[0]["id"]]["port"] == port["id"]
    (at_b,) = _with_address(_at_target(site_b)[1], port["ip"])
    assert (at_b.name, at_b.mac_address) == (f"cascade-{port['id']}", port["mac"])
    (at_a,) = _with_address(_at_target(site_a)[1], port["ip"])  # A is up: its remote port
    assert (at_a.name, at_a.binding_profile) == (
        f"cascade-remote-{port['id']}",
        {"tunnel_ip": port["vtep"]},
    )
