"""Two site-sims on the Linux dataplane plugged into one underlay bridge, registered in the
test's Cascade: real host and VM namespaces, real VXLAN between the sites' hosts. Helpers
find a server's VM namespace and its site's host namespaces through ``/sim/v1/dataplane``.
Everything a test made (the underlay, host and VM namespaces) is removed at the end."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from cascade.cli.embedded import EmbeddedSite
from cascade.sites.driver import SiteDriver
from tests.engine.conftest import create_server, register, start_site, wait_operation
from tests.fabric.netns import require_netns, run_in
from tests.sim.linux_regions import new_namespaces_removed, underlay_bridge


@contextmanager
def linux_sites(
    tmp_path: Path, client: TestClient, admin_token: str
) -> Iterator[list[EmbeddedSite]]:
    require_netns()
    with ExitStack() as stack:
        stack.enter_context(new_namespaces_removed(hosts="cs-site-"))
        underlay = stack.enter_context(underlay_bridge())
        sites = []
        for name in ("site-a", "site-b"):
            args = ("--hosts", "2", "--dataplane", "linux", "--underlay", underlay)
            site = start_site(name, tmp_path, *args)
            stack.callback(site.stop)
            register(client, admin_token, site)
            sites.append(site)
        yield sites


def dataplane(site: EmbeddedSite) -> dict[str, Any]:
    session = SiteDriver(site.access()).connection.session
    answer = session.get(f"{site.url}/sim/v1/dataplane")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def vm_namespace(site: EmbeddedSite, site_port_id: str) -> str:
    """The VM namespace of a port, once the site's fabric holds the port."""
    found: list[str] = []

    def held() -> bool:
        ports = dataplane(site)["ports"]
        found[:] = [str(p["vm_namespace"]) for p in ports if p["id"] == site_port_id]
        return bool(found)

    eventually(held, f"port {site_port_id} at a host of {site.site_name}")
    return found[0]


def host_namespaces(site: EmbeddedSite) -> list[str]:
    return [str(host["namespace"]) for host in dataplane(site)["hosts"]]


def boot(client: TestClient, token: str, name: str, site: str, network: str) -> dict[str, Any]:
    """A server on a Cascade network at a site, ACTIVE; its view with its port."""
    accepted = create_server(client, token, name, site=site, port={"network": network})
    done = wait_operation(client, token, accepted["operation"]["id"])
    assert done["status"] == "succeeded", done
    response = client.get(
        f"/v1/servers/{accepted['server']['id']}", headers={"X-Auth-Token": token}
    )
    server: dict[str, Any] = response.json()["server"]
    return server


def echoes_received(vm_netns: str) -> int:
    """ICMP echo requests the VM's namespace has received so far (the kernel's ``InEchos``):
    pings reaching it, and nothing else (its neighbours' IPv6 solicitations do not count)."""
    lines = run_in(vm_netns, "cat", "/proc/net/snmp").splitlines()
    names, values = (line.split() for line in lines if line.startswith("Icmp:"))
    return int(values[names.index("InEchos")])


def eventually(
    condition: Callable[[], bool],
    what: str,
    timeout: float = 30.0,
    detail: Callable[[], str] | None = None,
) -> None:
    """Wait for ``condition``; on the deadline fail saying ``what`` was awaited and, with
    ``detail``, what it says of the state then."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out waiting for {what}" + (f": {detail()}" if detail else "")
            )
        time.sleep(0.2)


def _entries(host_netns: str) -> list[str]:
    """The host namespace's FDB and ARP entries, a line each."""
    fdb = run_in(host_netns, "bridge", "fdb", "show")
    neigh = subprocess.run(
        ["ip", "-n", host_netns, "neigh", "show"], capture_output=True, text=True, check=True
    ).stdout
    return (fdb + neigh).splitlines()


def kernel_knows(host_netns: str, mac: str) -> bool:
    """Whether a host namespace has an FDB or ARP entry for ``mac``."""
    return any(mac in line for line in _entries(host_netns))


def entries_for(hosts: list[str], mac: str) -> dict[str, list[str]]:
    """Per host namespace that still has one, its FDB and ARP entries for ``mac``."""
    found = {host: [line for line in _entries(host) if mac in line] for host in hosts}
    return {host: lines for host, lines in found.items() if lines}
