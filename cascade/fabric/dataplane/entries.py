"""Remote neighbours' kernel entries on a VXLAN device, read and written over netlink in bulk.

Owns, for one network's VXLAN device: which entries a neighbour table needs (an FDB entry
``MAC dst VTEP`` per remote neighbour, one all-zero flood entry per remote VTEP, a permanent
ARP entry per remote IP, the port's own and its allowed addresses; neighbours on the local
VTEP need none), reading what the device holds (two ``RTM_GETNEIGH`` dumps), and writing a
difference: deletions first, then the flood entries, FDB and ARP entries, as
``RTM_DELNEIGH``/``RTM_NEWNEIGH`` requests (``NLM_F_CREATE | NLM_F_REPLACE``; flood entries
``NLM_F_APPEND``) sent many to a ``sendto``.

Why messages are packed and parsed here and not with pyroute2's ``ndmsg``: building and
encoding one costs about 70 µs, decoding one about as much (measured: a dump of 10,000
neighbours took 3.4 s), and a network of 10,000 remote neighbours is 20,000 messages. A
message is a 16-byte header, a 12-byte ``ndmsg`` and two attributes; ``struct`` handles one
in a few µs. They go on a plain netlink socket that pyroute2 opens inside the namespace
(``netns.create_socket``), ``CHUNK`` requests to a ``sendto``. Only each chunk's last
request asks for an acknowledgement: the kernel answers the failure of any request anyway,
in order, so once that acknowledgement is read every failure in the chunk has been, each
named by its sequence number. Failures a request tolerates (deleting what is already gone,
appending a flood entry that exists) are dropped; the others are collected over the whole
batch and raised together as ``Unavailable``.

Imports only ``cascade.errors``, ``cascade.fabric.dataplane.base`` and pyroute2.
"""

from __future__ import annotations

import bisect
import errno
import os
import socket
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from pyroute2 import netns  # type: ignore[import-untyped]
from pyroute2.netlink import (  # type: ignore[import-untyped]
    NETLINK_ROUTE,
    NLM_F_ACK,
    NLM_F_APPEND,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
)
from pyroute2.netlink.rtnl import (  # type: ignore[import-untyped]
    RTM_DELNEIGH,
    RTM_GETNEIGH,
    RTM_NEWNEIGH,
)

from cascade.errors import Unavailable
from cascade.fabric.dataplane.base import Neighbour

ZERO_MAC = "00:00:00:00:00:00"
NTF_SELF = 0x02
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
AF_BRIDGE = 7
NDA_DST, NDA_LLADDR, NDA_IFINDEX = 1, 2, 8  # linux/neighbour.h
CHUNK = 1024  # requests per sendto: about 50 KB, their failures fit the receive buffer
TIMEOUT = 30.0  # seconds to wait for the kernel's answer to a chunk
HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
NDMSG = struct.Struct("=BxxxiHBB")  # family, ifindex, state, flags, type
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
ATTR = struct.Struct("=HH")  # rtattr: length, type
ERROR = struct.Struct("=i")  # nlmsgerr: -errno (0: an acknowledgement)
U32 = struct.Struct("=I")
RECEIVE = 65536  # bytes per recv: the kernel fills dump datagrams up to 32 KB

REPLACE = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE
APPEND = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_APPEND
GONE = frozenset({errno.ENOENT, errno.ESRCH})
NONE: frozenset[int] = frozenset()


@dataclass
class Entries:
    """The kernel entries of one network's VXLAN device (remote neighbours only)."""

    fdb: set[tuple[str, str]] = field(default_factory=set)  # (mac, vtep)
    arp: dict[str, str] = field(default_factory=dict)  # ip -> mac
    flood: set[str] = field(default_factory=set)  # vteps with an all-zero MAC entry


def needed(table: Mapping[str, Neighbour], local_vtep: str) -> Entries:
    """The kernel entries a table needs (local neighbours need none)."""
    entries = Entries()
    for n in table.values():
        if n.vtep != local_vtep:
            mac = n.mac.lower()
            entries.fdb.add((mac, n.vtep))
            for ip in (n.ip, *n.pairs):  # a port's allowed addresses answer at its MAC too
                entries.arp[ip] = mac
            entries.flood.add(n.vtep)
    return entries


def moved_pairs(
    old: Mapping[str, Neighbour], new: Mapping[str, Neighbour], local_vtep: str
) -> dict[str, str]:
    """Allowed addresses ``new`` puts at a remote MAC other than the one ``old`` had them at
    (a service IP moved): address -> its new MAC, to announce to the local VMs."""
    before = {ip: n.mac.lower() for n in old.values() for ip in (n.ip, *n.pairs)}
    return {
        ip: n.mac.lower()
        for n in new.values()
        if n.vtep != local_vtep
        for ip in n.pairs
        if before.get(ip) != n.mac.lower()
    }


def to_write(old: Entries, new: Entries, again: Entries | None = None) -> Entries:
    """The entries that make ``old`` into ``new`` once its deletions are done: those ``new``
    has and ``old`` lacks or holds otherwise (an address moved to another MAC), and those of
    ``again`` that ``new`` keeps (rewritten whatever ``old`` says)."""
    again = again or Entries()
    arp = {ip: mac for ip, mac in new.arp.items() if old.arp.get(ip) != mac or ip in again.arp}
    fdb = (new.fdb - old.fdb) | (again.fdb & new.fdb)
    return Entries(fdb, arp, (new.flood - old.flood) | (again.flood & new.flood))


# -- requests -----------------------------------------------------------------------------

LLADDR = ATTR.pack(ATTR.size + 6, NDA_LLADDR)
DST4, DST6 = ATTR.pack(ATTR.size + 4, NDA_DST), ATTR.pack(ATTR.size + 16, NDA_DST)


@dataclass(frozen=True)
class _Requests:
    """Requests of one kind, each its ``ndmsg`` and attributes: bytes, which the cyclic
    garbage collector does not track (20,000 tuples made it run a full collection, 0.13 s,
    in the middle of a batch)."""

    kind: int  # RTM_NEWNEIGH or RTM_DELNEIGH
    flags: int
    tolerated: frozenset[int]  # errnos that are no failure (deleting what is gone)
    bodies: list[bytes]


def _dst(address: str) -> bytes:
    if ":" in address:
        return DST6 + socket.inet_pton(socket.AF_INET6, address)
    return DST4 + socket.inet_aton(address)


def _lladdr(mac: str) -> bytes:
    return LLADDR + bytes.fromhex(mac.replace(":", "")) + b"\0\0"  # padded to 4 bytes


def _requests(vxlan: int, old: Entries, new: Entries, write: Entries) -> list[_Requests]:
    """Delete what ``old`` has and ``new`` lacks, then write ``write``."""
    fdb = NDMSG.pack(AF_BRIDGE, vxlan, NUD_PERMANENT | NUD_NOARP, NTF_SELF, 0)
    arp = NDMSG.pack(socket.AF_INET, vxlan, NUD_PERMANENT, 0, 0)
    vteps = {v for _, v in old.fdb | write.fdb} | old.flood | write.flood
    vtep = {v: _dst(v) for v in vteps}  # each tunnel endpoint's attribute, encoded once
    flood = _lladdr(ZERO_MAC)
    delete = (RTM_DELNEIGH, NLM_F_REQUEST, GONE)
    replace = (RTM_NEWNEIGH, REPLACE, NONE)
    return [
        _Requests(
            *delete, [arp + _dst(ip) for ip, mac in old.arp.items() if new.arp.get(ip) != mac]
        ),
        _Requests(*delete, [fdb + _lladdr(mac) + vtep[v] for mac, v in old.fdb - new.fdb]),
        _Requests(*delete, [fdb + flood + vtep[v] for v in old.flood - new.flood]),
        _Requests(
            RTM_NEWNEIGH,
            APPEND,
            frozenset({errno.EEXIST}),
            [fdb + flood + vtep[v] for v in write.flood],
        ),
        _Requests(*replace, [fdb + _lladdr(mac) + vtep[v] for mac, v in write.fdb]),
        _Requests(*replace, [arp + _dst(ip) + _lladdr(mac) for ip, mac in write.arp.items()]),
    ]


def _acknowledged(message: bytes) -> bytes:
    """The message, asking for an acknowledgement."""
    length, kind, flags, number, port = HEADER.unpack_from(message)
    return HEADER.pack(length, kind, flags | NLM_F_ACK, number, port) + message[HEADER.size :]


def _address(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def _neighbour(message: bytes) -> tuple[int, int, int, dict[int, bytes]]:
    """(ifindex, state, flags, attributes by type) of an ``RTM_NEWNEIGH`` payload."""
    _, ifindex, state, flags, _ = NDMSG.unpack_from(message)
    attrs, offset = {}, NDMSG.size
    while offset + ATTR.size <= len(message):
        length, kind = ATTR.unpack_from(message, offset)
        if length < ATTR.size:
            break
        attrs[kind] = message[offset + ATTR.size : offset + length]
        offset += (length + 3) & ~3
    return ifindex, state, flags, attrs


class Netlink:
    """A netlink socket in the namespace that reads a device's entries and writes entry
    differences, in bulk."""

    def __init__(self, namespace: str) -> None:
        self._socket: socket.socket = netns.create_socket(
            netns=namespace,
            family=socket.AF_NETLINK,
            socket_type=socket.SOCK_RAW,
            proto=NETLINK_ROUTE,
            flags=0,
        )
        self._socket.settimeout(TIMEOUT)
        self._sequence = 0

    def read(self, vxlan: int) -> Entries:
        """What the device holds: FDB entries with a destination, permanent ARP entries."""
        held = Entries()
        bridge_port = IFINFOMSG.pack(AF_BRIDGE, 0, vxlan, 0, 0)  # dumps that port's FDB only
        for ifindex, _, flags, attrs in self._dump(bridge_port):
            if ifindex == vxlan and flags & NTF_SELF and NDA_DST in attrs and NDA_LLADDR in attrs:
                mac, dst = attrs[NDA_LLADDR].hex(":"), _address(attrs[NDA_DST])
                if mac == ZERO_MAC:
                    held.flood.add(dst)
                else:
                    held.fdb.add((mac, dst))
        device = ATTR.pack(ATTR.size + U32.size, NDA_IFINDEX) + U32.pack(vxlan)
        for ifindex, state, _, attrs in self._dump(NDMSG.pack(socket.AF_INET, 0, 0, 0, 0) + device):
            if (
                ifindex == vxlan
                and state & NUD_PERMANENT
                and NDA_DST in attrs
                and NDA_LLADDR in attrs
            ):
                held.arp[_address(attrs[NDA_DST])] = attrs[NDA_LLADDR].hex(":")
        return held

    def _dump(self, request: bytes) -> Iterator[tuple[int, int, int, dict[int, bytes]]]:
        """The neighbours a ``RTM_GETNEIGH`` dump with this request answers."""
        self._sequence += 1
        number, flags = self._sequence, NLM_F_REQUEST | NLM_F_DUMP
        header = HEADER.pack(HEADER.size + len(request), RTM_GETNEIGH, flags, number, 0)
        self._socket.sendto(header + request, (0, 0))
        for kind, answered, payload in self._messages():
            if answered != number:
                continue
            if kind in (NLMSG_DONE, NLMSG_ERROR) and ERROR.unpack_from(payload)[0] < 0:
                code = -ERROR.unpack_from(payload)[0]
                raise Unavailable(f"neighbour dump refused: {os.strerror(code)}")
            if kind in (NLMSG_DONE, NLMSG_ERROR):
                return
            if kind == RTM_NEWNEIGH:
                yield _neighbour(payload)

    def apply(self, vxlan: int, old: Entries, new: Entries, write: Entries) -> None:
        """Delete what ``old`` has and ``new`` lacks, then write ``write``."""
        groups = _requests(vxlan, old, new, write)
        first = self._sequence + 1
        messages: list[bytes] = []
        starts: list[int] = []  # each group's first message
        for group in groups:
            base, kind, flags = first + len(messages), group.kind, group.flags
            starts.append(len(messages))
            messages += [
                HEADER.pack(HEADER.size + len(body), kind, flags, number, 0) + body
                for number, body in enumerate(group.bodies, base)
            ]
        self._sequence += len(messages)
        failures: list[tuple[_Requests, int]] = []
        for start in range(0, len(messages), CHUNK):
            chunk = messages[start : start + CHUNK]
            chunk[-1] = _acknowledged(chunk[-1])
            self._socket.sendto(b"".join(chunk), (0, 0))
            for number, code in self._answers(first + start + len(chunk) - 1):
                group = groups[bisect.bisect_right(starts, number - first) - 1]
                if code and code not in group.tolerated:
                    failures.append((group, code))
        if failures:
            group, code = failures[0]
            raise Unavailable(
                f"{len(failures)} of {len(messages)} FDB/ARP requests were refused on the VXLAN "
                f"device (ifindex {vxlan}), the first "
                f"({'a delete' if group.kind == RTM_DELNEIGH else 'a write'}) "
                f"with {errno.errorcode.get(code, code)}: {os.strerror(code)}"
            )

    def _answers(self, last: int) -> Iterator[tuple[int, int]]:
        """(sequence, errno) of each answer up to the acknowledgement of ``last``."""
        for kind, number, payload in self._messages():
            if kind == NLMSG_ERROR:
                yield number, -ERROR.unpack_from(payload)[0]
                if number == last:
                    return

    def _messages(self) -> Iterator[tuple[int, int, bytes]]:
        """(type, sequence, payload) of every message received, for as long as asked."""
        while True:
            try:
                data = self._socket.recv(RECEIVE)
            except TimeoutError as error:
                raise Unavailable(f"no netlink answer within {TIMEOUT} s") from error
            offset = 0
            while offset + HEADER.size <= len(data):
                length, kind, _, number, _ = HEADER.unpack_from(data, offset)
                yield kind, number, data[offset + HEADER.size : offset + length]
                offset += (length + 3) & ~3

    def close(self) -> None:
        self._socket.close()
