"""The Linux dataplane: programs one host's network namespace through pyroute2 (netlink).

Owns, in the host namespace ``netns``: per network a bridge ``br{vni}`` and a VXLAN device
``vx{vni}`` (dstport 4789, ``local`` = the host's VTEP, learning off, ARP proxy on) enslaved
to it (bridge learning off on that port), whose ifalias ``cascade-net:{network_id}`` names
the network; on the VXLAN device the FDB entries (``MAC dst VTEP`` and one all-zero flood
entry per remote VTEP) and permanent ARP entries of remote neighbours, written in netlink
batches by ``entries.Netlink`` (10,000 neighbours in a fraction of a second). Per local port:
a VM network namespace (``vm_namespace(port_id)``) holding ``eth0`` with the port's MAC, IPv4
address and allowed addresses (the guest takes and announces them, standing in for the VNF's
own take-IP/free-IP: ``guest``), and the host end ``t{hash}`` of that veth pair, on the
network's bridge, ifalias ``cascade-port:{port_id}:{network_id}`` (ids must not contain
``:``). A router's interface (``LocalPort.router``) has its inner end ``qr-{hash}`` in the
router's namespace (``router_namespace``: ``crt-`` and a hash of the host namespace and the
router id) instead, with the port's MAC and address (the subnet's gateway), and its
ifalias ends ``:{router_id}``; that namespace forwards IPv4 and holds the router's routes
(``routing``) and goes with the router's last interface here. A VM's port with a
``gateway`` gets its default route through it.

Everything is read back from the kernel, so a restarted agent sees what it programmed. The
kernel keeps no port ids for neighbours: this object remembers the tables it wrote, and a
fresh object reports remote neighbours keyed ``"mac:" + MAC`` (neighbours on the local VTEP
have no kernel entry and are not reported; neighbours of a network absent here are
ignored). ``replace_neighbours`` compares the goal with the kernel, not with memory: it is
what a restarted agent calls. A port with ``port_security`` has its security rules enforced
by nftables chains on its host veth (``nft``, which reads them back for ``ports()``, so
``set_port`` rewrites them only when they differ); they go before the port's links come and
after they go. An unsecured port has no chains and reads back with no rules.

With ``create=True`` a missing host namespace is created and marked as created by an agent
(the ifalias ``cascade-agent-created`` on its ``lo``); ``shutdown()`` then removes it, with
the VM namespaces of its ports, and nothing else. A namespace that existed before is left
as it is, with everything programmed in it, for the next agent to reconcile, unless it
carries the mark (an agent created it and was killed before it could remove it).

pyroute2's synchronous ``IPRoute`` drives a private asyncio loop with
``run_until_complete``, which cannot run on a thread whose own loop is running, and the
agent calls its dataplane from inside its event loop. So every object does all its netlink
work on one thread of its own: each public method runs there (the caller blocks, as the
synchronous interface promises), and the ``IPRoute`` objects are made and closed there.

Imports only ``cascade.errors``, ``cascade.fabric.dataplane`` (``base``, ``entries``, ``guest``,
``names``, ``nft``, ``routing``) and pyroute2.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any, Concatenate, ParamSpec, TypeVar

from pyroute2 import IPRoute, netns  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from cascade.errors import BadRequest, Conflict, Unavailable, present
from cascade.fabric.dataplane import entries, guest, nft, routing
from cascade.fabric.dataplane.base import Dataplane, LocalPort, Neighbour
from cascade.fabric.dataplane.names import (
    NET_ALIAS,
    OWNED_ALIAS,
    PORT_ALIAS,
    PortLink,
    host_ifname,
    router_ifname,
    router_namespace,
    vm_namespace,
)

VXLAN_PORT = 4789
AF_INET = 2

P = ParamSpec("P")
R = TypeVar("R")


def _attr(msg: Any, name: str) -> Any:
    return msg.get_attr(name)


@contextmanager
def _ignore(*codes: int) -> Iterator[None]:
    """Swallow netlink errors with these errnos (idempotent add/delete)."""
    try:
        yield
    except NetlinkError as error:
        if error.code not in codes:
            raise


def _interface(address: str) -> ipaddress.IPv4Interface:
    try:
        return ipaddress.IPv4Interface(address)
    except ValueError as error:
        raise BadRequest(f"invalid IPv4 address {address!r}") from error


def _filter(port: LocalPort, address: ipaddress.IPv4Interface) -> nft.Filter | None:
    """What the port's chains enforce: its rules, addresses and allowed addresses when it is
    secured, nothing otherwise."""
    if not port.port_security:
        return None
    rules = tuple(map(nft.canonical, port.security_rules))
    return nft.Filter(port.mac.lower(), str(address.ip), rules, tuple(port.allowed_ips))


def _on_worker(
    method: Callable[Concatenate[LinuxDataplane, P], R],
) -> Callable[Concatenate[LinuxDataplane, P], R]:
    """Run the method on the object's netlink thread (directly when already there)."""

    @functools.wraps(method)
    def call(self: LinuxDataplane, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if threading.get_ident() == self._worker_id:
            return method(self, *args, **kwargs)
        if self._closed:
            raise Unavailable(f"the dataplane of {self.netns!r} is closed")
        return self._worker.submit(method, self, *args, **kwargs).result()

    return call


def _create_namespace(name: str) -> bool:
    """Create the named network namespace unless it exists; whether it was created here."""
    if name in netns.listnetns():
        return False
    try:
        netns.create(name)
    except FileExistsError:  # another process made it in between: not ours
        return False
    return True


class LinuxDataplane(Dataplane):
    enforces_rules = True  # secured ports are filtered by nftables (``nft``)

    def __init__(self, netns: str, local_vtep: str, create: bool = False) -> None:
        self.netns = netns
        self.local_vtep = local_vtep
        self.created_namespace = False  # whether this object created ``netns`` (and removes it)
        self._closed = False
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"netlink-{netns}")
        self._worker_id = self._worker.submit(threading.get_ident).result()
        try:
            if create:
                self.created_namespace = self._worker.submit(_create_namespace, netns).result()
            self._ipr: Any = self._worker.submit(IPRoute, netns=netns, flags=0).result()
            self._netlink = entries.Netlink(netns)  # FDB and ARP entries, in bulk
            if create:
                self._worker.submit(self._claim).result()
        except BaseException as error:
            self._worker.shutdown()
            self._remove_namespace()
            if isinstance(error, OSError):
                raise Unavailable(f"network namespace {netns!r}: {error}") from error
            raise
        self._tables: dict[str, dict[str, Neighbour]] = {}

    def _claim(self) -> None:
        """Mark a namespace created here (its ``lo`` carries ``OWNED_ALIAS``), or find the
        mark: a namespace an agent created and could not remove (it was killed) is still an
        agent's to remove on stop, one an operator made never is."""
        lo = self._index("lo")
        if lo is None:
            return
        if self.created_namespace:
            self._ipr.link("set", index=lo, ifalias=OWNED_ALIAS)
        else:
            alias = _attr(self._ipr.link("get", index=lo)[0], "IFLA_IFALIAS")
            self.created_namespace = alias == OWNED_ALIAS

    def _remove_namespace(self) -> None:
        if self.created_namespace:
            with suppress(FileNotFoundError):
                netns.remove(self.netns)
            self.created_namespace = False

    # -- names ------------------------------------------------------------------------------

    def vm_namespace(self, port_id: str) -> str:
        """The VM namespace of a port on this host."""
        return vm_namespace(self.netns, port_id)

    def _host_ifname(self, port_id: str) -> str:
        return host_ifname(self.netns, port_id)

    # -- links ------------------------------------------------------------------------------

    def _index(self, ifname: str) -> int | None:
        found = self._ipr.link_lookup(ifname=ifname)
        return int(found[0]) if found else None

    def _links(self, prefix: str) -> Iterator[tuple[int, str]]:
        """(index, ifalias without prefix) of every link whose ifalias starts with prefix."""
        for msg in self._ipr.link("dump"):
            alias = _attr(msg, "IFLA_IFALIAS")
            if isinstance(alias, str) and alias.startswith(prefix):
                yield int(msg["index"]), alias.removeprefix(prefix)

    def _vxlan_info(self, index: int) -> dict[str, Any]:
        info = _attr(self._ipr.link("get", index=index)[0], "IFLA_LINKINFO")
        data = info.get_attr("IFLA_INFO_DATA") if info is not None else None
        return {name.lower(): value for name, value in data["attrs"]} if data else {}

    def _ensure_vxlan(self, vni: int, alias: str) -> int:
        name = f"vx{vni}"
        want = {"ifla_vxlan_id": vni, "ifla_vxlan_local": self.local_vtep}
        want |= {"ifla_vxlan_port": VXLAN_PORT, "ifla_vxlan_learning": 0, "ifla_vxlan_proxy": 1}
        index = self._index(name)
        if index is not None:
            info = self._vxlan_info(index)
            if any(info.get(key) != value for key, value in want.items()):
                self._ipr.link("del", index=index)  # stale settings: recreate
                index = None
        if index is None:
            self._ipr.link("add", ifname=name, kind="vxlan", **{k[5:]: v for k, v in want.items()})
            index = present(self._index(name), f"link {name} just added")
        self._ipr.link("set", index=index, ifalias=alias)
        return index

    def _delete_link(self, ifname: str) -> None:
        index = self._index(ifname)
        if index is not None:
            with _ignore(errno.ENODEV):
                self._ipr.link("del", index=index)

    # -- networks ---------------------------------------------------------------------------

    @_on_worker
    def networks(self) -> dict[str, int]:
        return {
            network_id: int(self._vxlan_info(index)["ifla_vxlan_id"])
            for index, network_id in self._links(NET_ALIAS)
        }

    @_on_worker
    def ensure_network(self, network_id: str, vni: int) -> None:
        present = self.networks()
        if present.get(network_id, vni) != vni:
            raise Conflict(f"network {network_id} is present with VNI {present[network_id]}")
        owner = next((n for n, v in present.items() if v == vni and n != network_id), None)
        if owner is not None:
            raise Conflict(f"VNI {vni} is used by network {owner}")
        bridge = self._index(f"br{vni}")
        if bridge is None:
            with _ignore(errno.EEXIST):
                self._ipr.link("add", ifname=f"br{vni}", kind="bridge")
            bridge = self._index(f"br{vni}")
        vxlan = self._ensure_vxlan(vni, NET_ALIAS + network_id)
        self._ipr.link("set", index=vxlan, master=bridge, state="up")
        # No bridge learning on the tunnel port: remote MACs live only in the VXLAN FDB we
        # program, so a removed neighbour leaves no learned bridge entry behind.
        self._ipr.brport("set", index=vxlan, learning=0)
        self._ipr.link("set", index=bridge, state="up")
        self._tables.setdefault(network_id, {})

    @_on_worker
    def remove_network(self, network_id: str) -> None:
        vni = self.networks().get(network_id)
        for link in self._port_links().values():
            if link.network_id == network_id:
                self.remove_port(link.port_id)
        if vni is not None:
            self._delete_link(f"vx{vni}")
            self._delete_link(f"br{vni}")
        self._tables.pop(network_id, None)

    # -- ports ------------------------------------------------------------------------------

    def _port_links(self) -> dict[int, PortLink]:
        """Host-side veth index -> the port it plugs in."""
        return {index: PortLink.parse(rest) for index, rest in self._links(PORT_ALIAS)}

    def _inside(self, port_id: str, router: str | None) -> tuple[str, str]:
        """The namespace and name of a port's inner end: a VM's ``eth0``, or a router's
        ``qr-{hash}`` (15 characters) in the router's namespace."""
        if router is None:
            return self.vm_namespace(port_id), "eth0"
        return router_namespace(self.netns, router), router_ifname(port_id)

    @_on_worker
    def set_port(self, port: LocalPort) -> None:
        vni = self.networks().get(port.network_id)
        if vni is None:
            raise Conflict(f"network {port.network_id} is not present on this host")
        address, mac = _interface(port.ip), port.mac.lower()
        namespace, inner = self._inside(port.port_id, port.router)
        host = self._host_ifname(port.port_id)
        nft.enforce(self.netns, host, _filter(port, address))
        if namespace not in netns.listnetns():
            with suppress(FileExistsError):
                netns.create(namespace)
        if self._index(host) is None:
            with IPRoute(netns=namespace, flags=0) as inside, suppress(IndexError):
                inside.link("del", index=inside.link_lookup(ifname=inner)[0])  # a crash's orphan
            peer = {"ifname": inner, "net_ns_fd": namespace}
            self._ipr.link("add", ifname=host, kind="veth", peer=peer)
        alias = PortLink(port.port_id, port.network_id, port.router).alias()
        index = self._index(host)
        self._ipr.link("set", index=index, master=self._index(f"br{vni}"), ifalias=alias)
        self._ipr.link("set", index=index, state="up")
        with IPRoute(netns=namespace, flags=0) as inside:
            taken = guest.configure(inside, inner, mac, address, port.allowed_ips)
            if port.router is None:
                routing.set_gateway(inside, port.gateway)
            else:
                routing.forward(namespace)
                routing.set_routes(inside, port.routes)
        guest.announce(namespace, inner, dict.fromkeys(taken, mac))

    @_on_worker
    def remove_port(self, port_id: str) -> None:
        """Remove the port's veth pair and its VM namespace, or its router's namespace when
        it was the router's last interface here."""
        links = list(self._port_links().values())
        router = next((link.router for link in links if link.port_id == port_id), None)
        host = self._host_ifname(port_id)
        nft.enforce(self.netns, host, None)
        self._delete_link(host)
        others = [link for link in links if link.router == router and link.port_id != port_id]
        if router is not None and others:
            return  # the router keeps other interfaces here
        namespace = self._inside(port_id, router)[0]
        if namespace in netns.listnetns():
            with suppress(FileNotFoundError):
                netns.remove(namespace)

    @_on_worker
    def ports(self) -> dict[str, LocalPort]:
        vnis = self.networks()
        programmed = nft.read(self.netns)
        found: dict[str, LocalPort] = {}
        for link in self._port_links().values():
            port_id, router = link.port_id, link.router
            namespace, inner = self._inside(port_id, router)
            try:
                with IPRoute(netns=namespace, flags=0) as inside:
                    mac, ip, allowed = guest.read(inside, inner)
                    routes = routing.read_routes(inside) if router else ()
                    gateway = None if router else routing.read_gateway(inside)
            except (OSError, IndexError):  # namespace or interface gone: reported to be fixed
                mac, ip, allowed, routes, gateway = "", "", (), (), None
            vni = vnis.get(link.network_id, 0)  # 0: an orphan whose network is gone
            secured = programmed.get(self._host_ifname(port_id))
            rules = secured[1].rules if secured and secured[1] else ()
            found[port_id] = LocalPort(
                port_id, link.network_id, vni, mac, ip, rules, bool(secured), allowed,
                router, gateway, routes,
            )  # fmt: skip
        return found

    # -- neighbours -------------------------------------------------------------------------

    def _vxlan(self, network_id: str) -> int | None:
        vni = self.networks().get(network_id)
        return None if vni is None else self._index(f"vx{vni}")

    @_on_worker
    def update_neighbours(
        self, network_id: str, upserts: Mapping[str, Neighbour], removals: Iterable[str]
    ) -> None:
        vxlan = self._vxlan(network_id)
        if vxlan is None:  # no segment to program yet: ensure_network + replace will follow
            return
        current = dict(self.neighbours(network_id))
        table = dict(current)
        for port_id in removals:
            table.pop(port_id, None)
        table.update(upserts)
        # On a fresh object the table came from the kernel keyed "mac:…": a port id now
        # naming the same MAC supersedes that key.
        macs = {f"mac:{n.mac.lower()}" for n in upserts.values()}
        table = {k: n for k, n in table.items() if k not in macs or k in upserts}
        new, old = entries.needed(table, self.local_vtep), entries.needed(current, self.local_vtep)
        again = entries.needed(upserts, self.local_vtep)  # rewritten: repairs what drifted
        self._netlink.apply(vxlan, old, new, entries.to_write(old, new, again))
        self._tables[network_id] = table
        bridge = f"br{self.networks()[network_id]}"
        guest.announce(self.netns, bridge, entries.moved_pairs(current, table, self.local_vtep))

    @_on_worker
    def replace_neighbours(self, network_id: str, table: Mapping[str, Neighbour]) -> None:
        vxlan = self._vxlan(network_id)
        if vxlan is None:
            return
        new = entries.needed(table, self.local_vtep)
        old = self._netlink.read(vxlan)
        self._netlink.apply(vxlan, old, new, entries.to_write(old, new))
        self._tables[network_id] = dict(table)

    @_on_worker
    def neighbours(self, network_id: str) -> Mapping[str, Neighbour]:
        if network_id in self._tables:
            return dict(self._tables[network_id])
        vxlan = self._vxlan(network_id)
        if vxlan is None:
            return {}
        held = self._netlink.read(vxlan)
        ips: dict[str, list[str]] = {}  # the kernel cannot tell a port's own from its pairs
        for ip, mac in sorted(held.arp.items()):
            ips.setdefault(mac, []).append(ip)
        return {
            f"mac:{mac}": Neighbour(mac, (ips.get(mac) or [""])[0], vtep, tuple(ips[mac][1:]))
            for mac, vtep in held.fdb
        }

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._netlink.close()
            self._worker.submit(self._ipr.close).result()
        finally:
            self._worker.shutdown()

    def shutdown(self) -> None:
        """Close; if this object created the host namespace, remove it and its ports' VM
        namespaces (deleting the host namespace takes its bridges, tunnels and veths)."""
        try:
            if self.created_namespace and not self._closed:
                for port_id in self.ports():
                    self.remove_port(port_id)
        finally:
            self.close()
            self._remove_namespace()
