"""What the Linux dataplane names in the kernel: the namespaces of VMs and routers, the
interfaces of ports, and the ifaliases that say which network, port and router a link
belongs to (read back after a restart). Names are hashes of the host namespace and an id,
so that hosts sharing one kernel (namespaces of one machine) never collide, and interface
names stay within the kernel's 15 characters.

Imports nothing of Cascade.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

NET_ALIAS = "cascade-net:"  # + network id, on a network's VXLAN device
PORT_ALIAS = "cascade-port:"  # + port id:network id[:router id], on a port's host veth
OWNED_ALIAS = "cascade-agent-created"  # on the lo of a host namespace an agent created


def digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


class PortLink(NamedTuple):
    """What a port's host-side veth says of it (its ifalias)."""

    port_id: str
    network_id: str
    router: str | None  # the router it is an interface of

    @classmethod
    def parse(cls, alias: str) -> PortLink:
        """From an ifalias without ``PORT_ALIAS`` (ids must not contain ``:``)."""
        port_id, _, rest = alias.partition(":")
        network_id, _, router = rest.partition(":")
        return cls(port_id, network_id, router or None)

    def alias(self) -> str:
        return f"{PORT_ALIAS}{self.port_id}:{self.network_id}" + (
            f":{self.router}" if self.router else ""
        )


def vm_namespace(host_netns: str, port_id: str) -> str:
    """The VM namespace of a port on the host namespace ``host_netns`` (both in the hash)."""
    return "cvm-" + digest(f"{host_netns}/{port_id}")


def router_namespace(host_netns: str, router_id: str) -> str:
    """The namespace of a router's interfaces on the host namespace ``host_netns``."""
    return "crt-" + digest(f"{host_netns}/{router_id}")


def host_ifname(host_netns: str, port_id: str) -> str:
    """The host end of a port's veth pair."""
    return "t" + digest(f"{host_netns}/{port_id}")


def router_ifname(port_id: str) -> str:
    """A router interface's inner end, in the router's namespace (15 characters)."""
    return "qr-" + digest(port_id)
