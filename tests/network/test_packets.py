"""Networks that span sites, proven with real packets: two site-sims on the Linux dataplane
(host and VM namespaces, VXLAN over one underlay), driven only through Cascade's API.

Two tenants use the same CIDR on their own stretched networks: each tenant's VM at site A
pings its VM at site B, and not one packet of it reaches the other tenant's VM that holds the
same address (its receive counter does not move). Deleting a server takes its FDB and ARP
entries away at every host of both sites (read back from the kernel)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.conftest import make_tenant
from tests.engine.conftest import WorkerFactory, wait_operation
from tests.fabric.netns import ping
from tests.network.linux_sites import (
    boot,
    eventually,
    host_namespaces,
    kernel_knows,
    linux_sites,
    rx_packets,
    vm_namespace,
)
from tests.network.test_networks import create_network

CIDR = "10.90.0.0/24"


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
        before_red, before_blue = rx_packets(netns["red", "b"]), rx_packets(netns["blue", "b"])
        for _ in range(10):
            assert ping(netns["red", "a"], target)
        assert rx_packets(netns["red", "b"]) >= before_red + 10
        assert rx_packets(netns["blue", "b"]) == before_blue  # nothing crossed tenants

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
        )
        assert not ping(netns["red", "a"], target)
        assert ping(netns["blue", "a"], target)  # the other tenant's VM at that address lives
