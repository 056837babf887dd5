"""The dataplane interface an agent drives, and the values it is given.

A dataplane holds, per network, a VXLAN segment (its VNI), the local VM ports on it and the
neighbour table: for every port of the network, wherever it is, its MAC, IP and the tunnel
endpoint (VTEP) of the host that holds it. Every method is idempotent: applying the same
call twice leaves the same state, so an agent may replay after a crash or a resync.

Calls are synchronous on purpose: netlink requests complete in well under a millisecond,
and a simulated fleet of a million in-memory dataplanes cannot afford a coroutine per call.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Neighbour:
    """One port of a network as every host on that network must know it."""

    mac: str
    ip: str  # address without prefix length, e.g. "10.0.0.5"
    vtep: str  # underlay address of the host (or site gateway) holding the port
    # addresses the port also holds (allowed address pairs: a service IP), at the same MAC
    pairs: tuple[str, ...] = ()


Route = tuple[str, str]  # (destination prefix, next hop address)


@dataclass(frozen=True)
class LocalPort:
    """A VM port on this host.

    ``port_security`` False leaves the port unfiltered: every packet passes. True filters the
    port's traffic by ``security_rules`` with Neutron's semantics: stateful (replies to allowed
    connections pass, invalid packets are dropped), traffic to the VM (ingress) and from it
    (egress) denied unless a rule admits it, ARP always allowed, and the VM may send only
    from its own MAC and IP (anti-spoofing) and its ``allowed_ips``.

    ``allowed_ips`` (Neutron's allowed address pairs, addresses without prefix) are
    addresses the VM holds besides its own: a service IP. The Linux dataplane, whose VM
    namespace is the guest, also makes the guest take them (on ``eth0``, announced with
    gratuitous ARP) and free them, standing in for the VNF's own take-IP/free-IP.

    A port with ``router`` is one of that router's interfaces (Neutron's
    ``network:router_interface``), its address the subnet's gateway: its inner end lives in
    the router's namespace, which forwards between its interfaces and holds ``routes``
    (every interface of a router carries all of them). A VM's port with ``gateway`` gets
    its default route through it, as DHCP would give it.
    """

    port_id: str
    network_id: str
    vni: int
    mac: str
    ip: str  # with prefix length, e.g. "10.0.0.5/24"
    security_rules: tuple[Mapping[str, object], ...] = field(default=())
    port_security: bool = False
    allowed_ips: tuple[str, ...] = ()
    router: str | None = None  # a router's interface: its inner end is in the router
    gateway: str | None = None  # a VM's port: its default route's next hop (the subnet's)
    routes: tuple[Route, ...] = ()  # a router's interface: the router's extra routes


class Dataplane(abc.ABC):
    """What an agent programs. ``local_vtep`` is this host's own tunnel endpoint."""

    local_vtep: str
    # Whether the dataplane enforces the security rules of ports with ``port_security``: the
    # Linux one does (nftables); the memory one passes no packets and does not, its agents
    # say so in every acknowledgement, and the API reports them as not converged for rules.
    enforces_rules: bool = False

    @abc.abstractmethod
    def ensure_network(self, network_id: str, vni: int) -> None:
        """Create the network's segment if missing (no-op when it exists with that VNI)."""

    @abc.abstractmethod
    def remove_network(self, network_id: str) -> None:
        """Remove the segment, its neighbour entries and any port still on it."""

    @abc.abstractmethod
    def set_port(self, port: LocalPort) -> None:
        """Create or update a local VM port (the network must exist)."""

    @abc.abstractmethod
    def remove_port(self, port_id: str) -> None:
        """Remove a local VM port; unknown ids are ignored."""

    @abc.abstractmethod
    def update_neighbours(
        self, network_id: str, upserts: Mapping[str, Neighbour], removals: Iterable[str]
    ) -> None:
        """Add or replace neighbours by port id and remove others (unknown ids ignored)."""

    @abc.abstractmethod
    def replace_neighbours(self, network_id: str, table: Mapping[str, Neighbour]) -> None:
        """Make the network's neighbour table exactly ``table`` (after a resync)."""

    @abc.abstractmethod
    def networks(self) -> dict[str, int]:
        """Network id -> VNI for every segment present."""

    @abc.abstractmethod
    def ports(self) -> dict[str, LocalPort]:
        """Local ports by id."""

    @abc.abstractmethod
    def neighbours(self, network_id: str) -> Mapping[str, Neighbour]:
        """The neighbour table of one network, by port id (empty if unknown)."""

    def close(self) -> None:
        """Release resources (sockets); the programmed state stays."""
        return None

    def shutdown(self) -> None:
        """An agent stops: release resources and remove what this dataplane made for itself
        to run in (nothing by default; the Linux one removes a namespace it created)."""
        self.close()
