"""Two emulated regions on the Linux dataplane on one underlay, for the region tests: the
underlay bridge, a server placed on a stretched VXLAN network at a region, the remote port
standing for it at the other region, and the removal of whatever namespaces a test's sites
left behind (theirs only: tests running at the same time keep their own)."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade.cli.embedded import EmbeddedSite
from cascade.sites.driver import SiteDriver
from tests.fabric.netns import ip, namespaces, ping, remove_hosts

PASSWORD = "fabric-linux-site-pw"
VNI = 4242
CIDR = "10.42.0.0/24"
START_TIMEOUT = 120.0  # seconds for a site-sim to answer: its hosts' namespaces on a loaded machine


@dataclass
class Placed:
    """A server at one region and what the other region needs to know of it."""

    site: EmbeddedSite
    conn: Any
    port: Any  # the server's port (admin view: binding attributes)
    vtep: str  # the tunnel endpoint of the host it is bound to, from /v2.0/agents
    network_id: str

    @property
    def ip(self) -> str:
        return str(self.port.fixed_ips[0]["ip_address"])

    def dataplane(self) -> dict[str, Any]:
        answer = self.conn.session.get(f"{self.site.url}/sim/v1/dataplane")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def vm_namespace(self) -> str | None:
        """The VM namespace of the server's port, once its host holds the port."""
        held = [p["vm_namespace"] for p in self.dataplane()["ports"] if p["id"] == self.port.id]
        return str(held[0]) if held else None

    def reaches(self, other: Placed) -> bool:
        """One ping from this server to the other's address."""
        namespace = self.vm_namespace()
        return namespace is not None and ping(namespace, other.ip)

    def host_namespace(self) -> str:
        hosts = self.dataplane()["hosts"]
        (host,) = [h for h in hosts if h["name"] == self.port.binding_host_id]
        return str(host["namespace"])


@contextmanager
def underlay_bridge() -> Iterator[str]:
    """A namespace holding one bridge ``ubr``: the underlay both regions plug into."""
    name = f"cu-{secrets.token_hex(2)}"
    ip("netns", "add", name)
    try:
        ip("link", "add", "ubr", "type", "bridge", netns=name)
        ip("link", "set", "ubr", "up", netns=name)
        yield f"{name}/ubr"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@contextmanager
def new_namespaces_removed(hosts: str = "cs-fab-") -> Iterator[None]:
    """On exit, remove the host namespaces named ``hosts``* that appeared and the VM
    namespaces of their ports (a site that failed to stop leaves them); those of a site
    that stopped are gone already."""
    before = namespaces()
    try:
        yield
    finally:
        remove_hosts({name for name in namespaces() - before if name.startswith(hosts)})


def place(site: EmbeddedSite, pool: tuple[str, str]) -> Placed:
    """A VXLAN network (VNI 4242, CIDR 10.42.0.0/24 with this site's pool) and a server on
    it; the server's port and its host's VTEP."""
    conn = SiteDriver(site.access()).connection
    network, _ = vxlan_network(conn, VNI, CIDR, pool)
    return boot(site, conn, network.id)


def vxlan_network(conn: Any, vni: int, cidr: str, pool: tuple[str, str]) -> tuple[Any, Any]:
    """A VXLAN network on ``vni`` with one subnet of ``cidr`` allocating from ``pool``."""
    network = conn.network.create_network(
        name=f"vxlan-{vni}", provider_network_type="vxlan", provider_segmentation_id=vni
    )
    subnet = conn.network.create_subnet(
        network_id=network.id,
        cidr=cidr,
        ip_version=4,
        allocation_pools=[{"start": pool[0], "end": pool[1]}],
    )
    return network, subnet


def boot(site: EmbeddedSite, conn: Any, network_id: str, name: str = "vm") -> Placed:
    """A server on a network of the site (an image made for it); its port and its host's
    VTEP."""
    image = conn.image.create_image(
        name="img", data=b"boot" * 256, disk_format="raw", container_format="bare"
    )
    server = conn.compute.create_server(
        name=name, flavor_id="1", image_id=image.id, networks=[{"uuid": network_id}]
    )
    server = conn.compute.wait_for_server(server, wait=30, interval=0.1)
    (port,) = conn.network.ports(device_id=server.id)
    (agent,) = conn.network.agents(host=port.binding_host_id)
    return Placed(site, conn, port, agent.configuration["tunneling_ip"], network_id)


def shadow(at: Placed, of: Placed) -> Any:
    """At ``at``'s region, the remote port standing for ``of``'s server."""
    return remote_port(at.conn, at.network_id, of.port, of.vtep)


def remote_port(conn: Any, network_id: str, port: Any, vtep: str) -> Any:
    """On a network of ``conn``'s region, the remote port standing for ``port`` of another
    region, bound at ``vtep`` there."""
    return conn.network.create_port(
        network_id=network_id,
        mac_address=port.mac_address,
        fixed_ips=[{"ip_address": port.fixed_ips[0]["ip_address"]}],
        device_owner="compute:shadow",
        binding_profile={"tunnel_ip": vtep},
    )


def eventually(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def regions(stack: ExitStack, tmp_path: Path, *names: str) -> list[EmbeddedSite]:
    """Site-sims (``names`` start with ``fab-``) of two hosts each on the Linux dataplane,
    plugged into one underlay; stopped and removed when ``stack`` closes."""
    stack.enter_context(new_namespaces_removed())
    underlay = stack.enter_context(underlay_bridge())
    args = ["--hosts", "2", "--build-seconds", "0", "--dataplane", "linux", "--underlay", underlay]
    env = {"CASCADE_PASSWORD_HASH_ROUNDS": "4"}
    sites = []
    for name in names:
        site = EmbeddedSite(name, tmp_path / name, PASSWORD, args=args, env=env)
        stack.callback(site.stop)
        site.start(timeout=START_TIMEOUT)
        sites.append(site)
    return sites
