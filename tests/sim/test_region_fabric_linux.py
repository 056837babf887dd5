"""Two emulated regions on the Linux dataplane, one underlay: a server at each on the same
VNI, each known at the other region as a remote port toward the VTEP of the host it is bound
to (read from the other region's ``/v2.0/agents``), and a ping between the servers' VM
namespaces crosses the underlay; deleting a remote port takes its FDB and ARP entries away
and the ping fails. Real ``cascade site-sim --dataplane linux --underlay`` processes, driven
through openstacksdk; skipped outside CI unless root (``require_netns``)."""

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
from tests.fabric.netns import ip, namespaces, ping, require_netns, run_in

PASSWORD = "fabric-linux-site-pw"
VNI = 4242
CIDR = "10.42.0.0/24"


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
def new_namespaces_removed() -> Iterator[None]:
    """On exit, remove the host and VM namespaces that appeared (a site that failed to
    stop leaves them); those of a site that stopped are gone already."""
    before = namespaces()
    try:
        yield
    finally:
        for name in sorted(namespaces() - before):
            if name.startswith(("cs-fab-", "cvm-")):
                subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def place(site: EmbeddedSite, pool: tuple[str, str]) -> Placed:
    """A VXLAN network (VNI 4242, CIDR 10.42.0.0/24 with this site's pool), an image and a
    server on it; the server's port and its host's VTEP."""
    conn = SiteDriver(site.access()).connection
    net = conn.network.create_network(
        name="stretched", provider_network_type="vxlan", provider_segmentation_id=VNI
    )
    conn.network.create_subnet(
        network_id=net.id,
        cidr=CIDR,
        ip_version=4,
        allocation_pools=[{"start": pool[0], "end": pool[1]}],
    )
    image = conn.image.create_image(
        name="img", data=b"boot" * 256, disk_format="raw", container_format="bare"
    )
    server = conn.compute.create_server(
        name="vm", flavor_id="1", image_id=image.id, networks=[{"uuid": net.id}]
    )
    server = conn.compute.wait_for_server(server, wait=30, interval=0.1)
    (port,) = conn.network.ports(device_id=server.id)
    (agent,) = conn.network.agents(host=port.binding_host_id)
    return Placed(site, conn, port, agent.configuration["tunneling_ip"], net.id)


def shadow(at: Placed, of: Placed) -> Any:
    """At ``at``'s region, the remote port standing for ``of``'s server."""
    return at.conn.network.create_port(
        network_id=at.network_id,
        mac_address=of.port.mac_address,
        fixed_ips=[{"ip_address": of.ip}],
        device_owner="compute:shadow",
        binding_profile={"tunnel_ip": of.vtep},
    )


def eventually(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_servers_at_two_regions_ping_over_the_underlay(tmp_path: Path) -> None:
    require_netns()
    env = {"CASCADE_PASSWORD_HASH_ROUNDS": "4"}
    with ExitStack() as stack:
        stack.enter_context(new_namespaces_removed())
        underlay = stack.enter_context(underlay_bridge())
        args = ["--hosts", "2", "--build-seconds", "0", "--dataplane", "linux"]
        sites = [
            stack.enter_context(
                EmbeddedSite(
                    name, tmp_path / name, PASSWORD, args=[*args, "--underlay", underlay], env=env
                )
            )
            for name in ("fab-a", "fab-b")
        ]
        a = place(sites[0], ("10.42.0.10", "10.42.0.99"))
        b = place(sites[1], ("10.42.0.100", "10.42.0.199"))
        assert a.vtep != b.vtep
        remote_b = shadow(a, b)
        shadow(b, a)

        eventually(lambda: a.reaches(b), "a ping from a's server to b's")
        eventually(lambda: b.reaches(a), "a ping from b's server to a's")
        host_a = a.host_namespace()
        assert b.port.mac_address in run_in(host_a, "bridge", "fdb", "show")
        assert b.ip in run_in(host_a, "ip", "neigh", "show")

        a.conn.network.delete_port(remote_b)
        mac, address = b.port.mac_address, b.ip
        eventually(
            lambda: (
                mac not in run_in(host_a, "bridge", "fdb", "show")
                and address not in run_in(host_a, "ip", "neigh", "show")
            ),
            "b's FDB and ARP entries to leave a's host",
        )
        assert not a.reaches(b)
        made = {a.host_namespace(), b.host_namespace(), a.vm_namespace(), b.vm_namespace()}
        for site in sites:
            site.stop()
        assert not made & namespaces()  # a region that stops removes its hosts' namespaces
