"""The fabric's wire format, shared by the control plane and the agents.

Bodies are msgpack maps with one-letter keys (``t`` is the type). Messages for one host
(sent on its partition subject, shared with the other hosts of the partition) start with
the host name and a NUL byte, so an agent skips the other hosts' messages with a byte
comparison instead of decoding them. Types:

* ``h``  host delta: ``r`` host revision, ``up`` ports to create/update, ``rm`` port ids,
  ``tf`` networks whose table follows in the next messages (the port's host just joined)
* ``hs`` host snapshot: ``r``, ``ports`` (all of them)
* ``n``  network delta (multicast): ``n`` network, ``r`` revision, ``up`` neighbours, ``rm``
* ``ns`` network snapshot page (unicast): ``n``, ``r``, ``vni``, ``pg`` page, ``of`` pages,
  ``up`` neighbours
* ``g``  goal (unicast nudge): ``r`` host revision, ``n`` {network: revision}

Agents send, on shared subjects consumed by the controllers' queue group, ``ack``
(``h`` host, ``s`` the agent's clock in ns, ``r`` applied host revision, ``n`` {network:
applied revision} for every network it is on, 0 while it awaits the table, and ``e``: 1 when
its dataplane enforces the ports' security rules, absent when it does not, so that today's
acknowledgements carry no extra byte and an agent that predates the flag is never taken to
enforce rules) and ``sync`` requests (``h`` host, ``n`` a network id, or absent for the
host's own snapshot; ``g``: 1 asks for the goal message instead, after a reconnection).

A port travels as ``[id, network, vni, mac, ip/prefix, rules, port security 1|0]`` (an
entry without the last element, from before port security, is a port without it), followed
only when it has any by a map of optional attributes: ``a`` its allowed addresses, ``r``
the router it is an interface of, ``g`` its default gateway, ``rt`` its router's routes as
``[destination, nexthop]`` (entries of seven elements are ports without any of them). A
neighbour travels as ``[port id, mac, ip, vtep]``, followed only when the port has allowed
addresses by their list: the vtep is the tunnel endpoint of the host holding the port, or
for a remote port (one at another site) the endpoint it was given.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgpack

from cascade.fabric.dataplane.base import LocalPort, Neighbour

HOST_DELTA = "h"
HOST_SNAPSHOT = "hs"
NET_DELTA = "n"
NET_SNAPSHOT = "ns"
GOAL = "g"

Body = dict[str, Any]


def encode(body: Body) -> bytes:
    data: bytes = msgpack.packb(body)
    return data


def decode(data: bytes) -> Body:
    body: Body = msgpack.unpackb(data, strict_map_key=False)
    return body


def host_prefix(host: str) -> bytes:
    return host.encode() + b"\0"


def unicast(host: str, body: bytes) -> bytes:
    """An encoded body addressed to one host of a partition."""
    return host_prefix(host) + body


def for_me(data: bytes, prefix: bytes) -> Body | None:
    """The body of a unicast message if it is addressed to ``prefix``'s host, else None."""
    return decode(data[len(prefix) :]) if data.startswith(prefix) else None


def port_entry(port: LocalPort) -> list[Any]:
    """A port as it travels; ``local_port`` reads it back."""
    rules = list(port.security_rules)
    entry = [port.port_id, port.network_id, port.vni, port.mac, port.ip, rules]
    entry.append(int(port.port_security))
    values: Body = {"a": list(port.allowed_ips), "r": port.router, "g": port.gateway}
    values["rt"] = [list(route) for route in port.routes]
    optional = {key: value for key, value in values.items() if value}
    return [*entry, optional] if optional else entry


def local_port(entry: list[Any]) -> LocalPort:
    """A port from its entry; one of six elements (sent before port security was) has none,
    one of seven no optional attributes."""
    port_id, network_id, vni, mac, ip, rules = entry[:6]
    port_security = len(entry) > 6 and bool(entry[6])
    optional: Body = entry[7] if len(entry) > 7 else {}
    return LocalPort(
        port_id, network_id, vni, mac, ip, tuple(rules), port_security,
        allowed_ips=tuple(optional.get("a", ())),
        router=optional.get("r"),
        gateway=optional.get("g"),
        routes=tuple((route[0], route[1]) for route in optional.get("rt", ())),
    )  # fmt: skip


def neighbour_entry(port_id: str, neighbour: Neighbour) -> list[Any]:
    """A neighbour as it travels; ``neighbours`` reads it back."""
    entry: list[Any] = [port_id, neighbour.mac, neighbour.ip, neighbour.vtep]
    return [*entry, list(neighbour.pairs)] if neighbour.pairs else entry


def neighbours(entries: list[list[Any]]) -> dict[str, Neighbour]:
    return {e[0]: Neighbour(e[1], e[2], e[3], tuple(e[4]) if len(e) > 4 else ()) for e in entries}


class Ack(NamedTuple):
    """What an agent last said it holds: its host revision and each network's, and whether
    its dataplane enforces security rules."""

    sequence: int  # the agent's clock in ns: a later acknowledgement replaces an earlier
    revision: int
    networks: dict[str, int]
    enforces_rules: bool = False
