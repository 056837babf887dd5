"""The underlay the region's host namespaces reach other tunnel endpoints over
(``--underlay NETNS/BRIDGE``): an existing Linux bridge in a network namespace (``NETNS``
empty: the root namespace), made by whoever runs the sites (a test, the demo).

For each compute host the region adds a veth pair: one end on the bridge, named after the
host namespace (``u`` and a hash, 9 characters), the other in the host namespace, named
``underlay``, with the host's tunnel address as a /32 and a default route on-link through
it. So every tunnel endpoint on the bridge, whatever its site's tunnel network, is one ARP
away, and hosts of different sites reach each other over one L2 segment. ``detach`` removes
the pair again (deleting one end deletes both).

pyroute2's ``IPRoute`` runs a private event loop, so these functions must run on a thread
without one (``asyncio.to_thread``). Imports only ``cascade.errors`` and pyroute2.
"""

from __future__ import annotations

import errno
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute, netns  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from cascade.errors import BadRequest, Unavailable

HOST_END = "underlay"  # the host namespace's end of its veth pair
RT_SCOPE_LINK = 253


@dataclass(frozen=True)
class Underlay:
    netns: str  # "" for the root namespace
    bridge: str

    @classmethod
    def parse(cls, text: str) -> Underlay:
        namespace, separator, bridge = text.rpartition("/")
        if not separator or not bridge or len(bridge) > 15:
            raise BadRequest(
                f"--underlay takes NETNS/BRIDGE (NETNS empty for the root namespace), got {text!r}"
            )
        return cls(namespace, bridge)

    def __str__(self) -> str:
        return f"{self.netns}/{self.bridge}"

    @contextmanager
    def _netlink(self) -> Iterator[Any]:
        if self.netns and self.netns not in netns.listnetns():
            raise Unavailable(f"underlay: network namespace {self.netns!r} does not exist")
        with IPRoute(**({"netns": self.netns} if self.netns else {})) as ipr:
            yield ipr

    def _bridge_index(self, ipr: Any) -> int:
        found = ipr.link_lookup(ifname=self.bridge)
        if not found:
            where = f"namespace {self.netns!r}" if self.netns else "the root namespace"
            raise Unavailable(f"underlay: no bridge {self.bridge!r} in {where}")
        return int(found[0])

    def check(self) -> None:
        """Raise unless the namespace and the bridge exist."""
        with self._netlink() as ipr:
            self._bridge_index(ipr)

    def attach(self, host_netns: str, tunnel_ip: str) -> None:
        """Plug ``host_netns`` into the bridge with ``tunnel_ip``/32 and an on-link default
        route; a pair left from an earlier run is replaced."""
        self.detach(host_netns)
        name = bridge_end(host_netns)
        with self._netlink() as ipr:
            bridge = self._bridge_index(ipr)
            peer = {"ifname": HOST_END, "net_ns_fd": host_netns}
            ipr.link("add", ifname=name, kind="veth", peer=peer)
            index = ipr.link_lookup(ifname=name)[0]
            ipr.link("set", index=index, master=bridge, state="up")
        with IPRoute(netns=host_netns) as host:
            index = host.link_lookup(ifname=HOST_END)[0]
            host.addr("add", index=index, address=tunnel_ip, prefixlen=32)
            host.link("set", index=index, state="up")
            host.route("add", dst="0.0.0.0/0", oif=index, scope=RT_SCOPE_LINK)

    def detach(self, host_netns: str) -> None:
        """Remove the pair of ``host_netns`` if it is there."""
        with self._netlink() as ipr:
            found = ipr.link_lookup(ifname=bridge_end(host_netns))
            if found:
                try:
                    ipr.link("del", index=found[0])
                except NetlinkError as error:
                    if error.code != errno.ENODEV:
                        raise


def bridge_end(host_netns: str) -> str:
    """The bridge's end of a host namespace's veth pair (a linux name: 15 characters at most)."""
    return "u" + hashlib.blake2b(host_netns.encode(), digest_size=4).hexdigest()
