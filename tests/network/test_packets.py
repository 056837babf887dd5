"""Networks that span sites, proven with real packets: two site-sims on the Linux dataplane
(host and VM namespaces, VXLAN over one underlay), driven only through Cascade's API.

Two tenants use the same CIDR on their own stretched networks: each tenant's VM at site A
pings its VM at site B, and not one ping of it reaches the other tenant's VM that holds the
same address (the echo requests it received do not move). Deleting a server takes its FDB
and ARP entries away at every host of both sites (read back from the kernel). A router joins
subnets of two sites, and a service IP moves under a pinger."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from cascade.cli.probes import Pinger
from tests.conftest import make_tenant
from tests.engine.conftest import WorkerFactory, wait_operation
from tests.fabric.netns import ping
from tests.network.linux_sites import (
    boot,
    echoes_received,
    entries_for,
    eventually,
    host_namespaces,
    kernel_knows,
    linux_sites,
    vm_namespace,
)
from tests.network.test_networks import create_network

CIDR = "10.90.0.0/24"


def _left(
    client: TestClient,
    token: str,
    entries: dict[str, list[str]],
    operation: dict[str, Any],
    network_id: str,
) -> str:
    """What a failed wait for a deleted MAC to leave every host reports: the entries left,
    the delete's steps and where the network's segments stand."""
    network = client.get(f"/v1/networks/{network_id}", headers={"X-Auth-Token": token}).json()
    steps = [(step["name"], step["status"]) for step in operation["steps"]]
    return f"entries left {entries}; the delete's steps {steps}; the network {network}"


def test_two_tenants_on_one_cidr_ping_across_sites_and_never_each_other(
    tmp_path: Path, client: TestClient, admin_token: str, start_worker: WorkerFactory
) -> None:
    start_worker("w1")
    tenant_b = make_tenant(client, admin_token, role="admin")
    with linux_sites(tmp_path, client, admin_token) as (site_a, site_b):
        red = create_network(client, admin_token, "red", CIDR, ["site-a", "site-b"])
        blue = create_network(client, tenant_b.token, "blue", CIDR, ["site-a", "site-b"])
        assert red["vni"] != blue["vni"]
        vms = {
            (tenant, where): boot(client, token, f"{tenant}-{where}", f"site-{where}", tenant)
            for tenant, token in (("red", admin_token), ("blue", tenant_b.token))
            for where in ("a", "b")
        }
        # Same CIDR, same allocation order: the tenants' VMs hold the same addresses.
        assert vms["red", "b"]["port"]["ip"] == vms["blue", "b"]["port"]["ip"]
        site = {"a": site_a, "b": site_b}
        netns = {
            key: vm_namespace(site[key[1]], vm["port"]["site_port_id"]) for key, vm in vms.items()
        }
        target = vms["red", "b"]["port"]["ip"]

        eventually(lambda: ping(netns["red", "a"], target), "red at A to reach red at B")
        eventually(lambda: ping(netns["blue", "a"], target), "blue at A to reach blue at B")
        before_red = echoes_received(netns["red", "b"])
        before_blue = echoes_received(netns["blue", "b"])
        for _ in range(10):
            assert ping(netns["red", "a"], target)
        assert echoes_received(netns["red", "b"]) >= before_red + 10
        assert echoes_received(netns["blue", "b"]) == before_blue  # no ping crossed tenants

        # Deleting red's server at B: every host of both sites forgets its MAC.
        gone = vms["red", "b"]
        deleted = client.delete(f"/v1/servers/{gone['id']}", headers={"X-Auth-Token": admin_token})
        done = wait_operation(client, admin_token, deleted.json()["operation"]["id"])
        assert done["status"] == "succeeded", done
        hosts = host_namespaces(site_a) + host_namespaces(site_b)
        mac = gone["port"]["mac"]
        eventually(
            lambda: not any(kernel_knows(host, mac) for host in hosts),
            "every host to drop the deleted server's FDB and ARP entries",
            detail=lambda: _left(client, admin_token, entries_for(hosts, mac), done, red["id"]),
        )
        assert not ping(netns["red", "a"], target)
        assert ping(netns["blue", "a"], target)  # the other tenant's VM at that address lives


def test_routed_across_sites_and_a_service_ip_moved_under_a_pinger(
    tmp_path: Path, client: TestClient, admin_token: str, start_worker: WorkerFactory
) -> None:
    """A VM at site A pings a VM of another subnet at site B through the cross-site router;
    a client at A pings a service IP every 10 ms while it moves from A to B: the pings come
    back from the new holder, and the loss window is measured (printed, not asserted)."""
    start_worker("w1")
    headers = {"X-Auth-Token": admin_token}
    with linux_sites(tmp_path, client, admin_token) as (site_a, _site_b):
        create_network(client, admin_token, "left", "10.91.0.0/24", ["site-a"])
        create_network(client, admin_token, "right", "10.92.0.0/24", ["site-b"])
        create_network(client, admin_token, "ha", "10.93.0.0/24", ["site-a", "site-b"])
        response = client.post(
            "/v1/routers", headers=headers, json={"name": "across", "networks": ["left", "right"]}
        )
        assert (
            wait_operation(client, admin_token, response.json()["operation"]["id"])["status"]
            == "succeeded"
        )
        left = boot(client, admin_token, "left-vm", "site-a", "left")
        right = boot(client, admin_token, "right-vm", "site-b", "right")
        left_ns = vm_namespace(site_a, left["port"]["site_port_id"])
        eventually(
            lambda: ping(left_ns, right["port"]["ip"]), "left at A to reach right at B, routed"
        )

        master = boot(client, admin_token, "master", "site-a", "ha")
        client_vm = boot(client, admin_token, "client", "site-a", "ha")
        standby = boot(client, admin_token, "standby", "site-b", "ha")
        taken = client.post(
            "/v1/service-ips",
            headers=headers,
            json={"network": "ha", "holder": master["id"], "address": "10.93.0.100"},
        )
        assert taken.status_code == 202, taken.text
        sip = taken.json()["service_ip"]["id"]
        assert (
            wait_operation(client, admin_token, taken.json()["operation"]["id"])["status"]
            == "succeeded"
        )
        client_ns = vm_namespace(site_a, client_vm["port"]["site_port_id"])
        eventually(lambda: ping(client_ns, "10.93.0.100"), "the service IP to answer")
        pinger = Pinger(client_ns, "10.93.0.100", interval=0.01, duration=6)
        try:
            time.sleep(1.5)
            moved_at = time.time()
            moved = client.post(
                f"/v1/service-ips/{sip}/move", headers=headers, json={"to": standby["id"]}
            )
            done = wait_operation(client, admin_token, moved.json()["operation"]["id"])
            replies = pinger.result()
        finally:
            pinger.stop()
        assert done["status"] == "succeeded", done
        first = replies.first_from(standby["port"]["mac"], moved_at)
        assert first is not None, "no reply from the new holder"
        before = [t for t in replies.answered if t < moved_at]
        assert before, "the old holder never answered"
        print(
            f"service IP move: first reply from the new holder {first - moved_at:.3f} s after "
            f"the request, loss window {replies.loss_window(moved_at):.3f} s, "
            f"control plane {done['result']['switchover_s']} s"
        )
