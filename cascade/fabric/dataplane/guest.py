"""The guest side of a local port on the Linux dataplane: what the VM namespace's ``eth0``
holds (its MAC, its own address, the allowed addresses it took) and the gratuitous ARP that
announces an address it takes.

In the emulation the VM namespace is the guest, so the dataplane does here what a VNF does
for itself on a real cloud: a port that gains an allowed address (a service IP) has the
guest take it (on ``eth0``, with the prefix length of the port's own address) and announce
it with ``GARP_COUNT`` gratuitous ARP requests ``GARP_SPACING`` seconds apart, so the
neighbours' ARP caches follow the move at once; a port that loses one has the guest free it.
The frames are written here, on an ``AF_PACKET`` socket opened inside the namespace
(pyroute2's ``netns.create_socket``), and sent from a thread of their own so that the
dataplane's caller does not wait for the spacing.

Such a frame never crosses the tunnel: the VXLAN device's ARP proxy consumes every ARP frame
sent through it (the kernel's ``arp_reduce``), gratuitous ones included. So every host also
announces, on its own bridge to its local VMs, an allowed address that its neighbour table
now puts at another remote MAC (``announce`` from the host namespace), as the fabric's ARP
responder; OVS's ARP responder, which answers requests only, lets a VM's own GARP through.

Imports only pyroute2.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from pyroute2 import netns  # type: ignore[import-untyped]

AF_INET = 2
IFA_F_SECONDARY = 0x01
ETH_P_ARP = 0x0806
GARP_COUNT = 3
GARP_SPACING = 0.02  # seconds
BROADCAST = b"\xff" * 6
ARP_REQUEST = struct.Struct("!HHBBH6s4s6s4s")  # htype, ptype, hlen, plen, op, sha, spa, tha, tpa


def _attr(msg: Any, name: str) -> Any:
    return msg.get_attr(name)


def _held(vm: Any, index: int) -> dict[ipaddress.IPv4Interface, bool]:
    """The IPv4 addresses on the link, each with whether it is a secondary one, in order."""
    return {
        ipaddress.IPv4Interface(f"{_attr(msg, 'IFA_ADDRESS')}/{msg['prefixlen']}"): bool(
            msg["flags"] & IFA_F_SECONDARY
        )
        for msg in vm.addr("dump", index=index, family=AF_INET)
    }


def configure(
    vm: Any, ifname: str, mac: str, address: ipaddress.IPv4Interface, allowed: Iterable[str]
) -> list[str]:
    """Give the VM's ``ifname`` (its eth0, or a router's interface) exactly this MAC, its
    own address and the allowed addresses (with the own address's prefix length), and bring
    it and lo up; the allowed addresses it had to take, which the caller announces."""
    vm.link("set", index=vm.link_lookup(ifname="lo")[0], state="up")
    index = int(vm.link_lookup(ifname=ifname)[0])
    if _attr(vm.link("get", index=index)[0], "IFLA_ADDRESS") != mac:
        vm.link("set", index=index, address=mac)
    prefix = address.network.prefixlen
    extra = [ipaddress.IPv4Interface(f"{ip}/{prefix}") for ip in allowed]
    wanted = [address, *(a for a in extra if a != address)]
    for have in _held(vm, index):
        if have not in wanted:
            vm.addr("del", index=index, address=str(have.ip), prefixlen=have.network.prefixlen)
    held = _held(vm, index)  # a primary's removal takes its secondaries along
    taken = []
    for want in wanted:
        if want not in held:
            vm.addr("add", index=index, address=str(want.ip), prefixlen=prefix)
            taken += [str(want.ip)] if want != address else []
    vm.link("set", index=index, state="up")
    return taken


def read(vm: Any, ifname: str) -> tuple[str, str, tuple[str, ...]]:
    """(MAC, own IPv4 address with prefix or "", the other addresses held) of the VM's
    ``ifname``: the own address is the primary one, the allowed ones its secondaries."""
    index = int(vm.link_lookup(ifname=ifname)[0])
    mac = str(_attr(vm.link("get", index=index)[0], "IFLA_ADDRESS"))
    held = _held(vm, index)
    primary = next((str(a) for a, secondary in held.items() if not secondary), "")
    others = sorted(str(a.ip) for a in held if str(a) != primary)
    return mac, primary, tuple(others)


def _garp(mac: str, address: str) -> bytes:
    """A gratuitous ARP request: sender and target address both ``address``, broadcast."""
    hardware, ip = bytes.fromhex(mac.replace(":", "")), socket.inet_aton(address)
    arp = ARP_REQUEST.pack(1, 0x0800, 6, 4, 1, hardware, ip, b"\0" * 6, ip)
    frame = BROADCAST + hardware + struct.pack("!H", ETH_P_ARP) + arp
    return frame.ljust(60, b"\0")  # the Ethernet minimum, without the FCS


def announce(namespace: str, device: str, holders: Mapping[str, str]) -> None:
    """Send from ``device`` of ``namespace``, in the background, the gratuitous ARPs that
    say each address of ``holders`` is at its MAC."""
    if not holders:
        return
    sock = netns.create_socket(
        netns=namespace,
        family=socket.AF_PACKET,
        socket_type=socket.SOCK_RAW,
        proto=socket.htons(ETH_P_ARP),
        flags=0,
    )
    sock.bind((device, 0))
    frames = [_garp(mac, address) for address, mac in holders.items()]
    threading.Thread(target=_send, args=(sock, frames), daemon=True).start()


def _send(sock: socket.socket, frames: list[bytes]) -> None:
    with sock:
        for count in range(GARP_COUNT):
            if count:
                time.sleep(GARP_SPACING)
            for frame in frames:
                try:
                    sock.send(frame)
                except OSError:  # the port went meanwhile: nobody to tell
                    return
