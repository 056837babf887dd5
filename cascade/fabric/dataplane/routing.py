"""Routes on the Linux dataplane: a router namespace's IPv4 forwarding and extra routes, and
a VM's default route.

A router's namespace forwards between its interfaces (``net.ipv4.ip_forward``, per
namespace) and holds the router's extra routes as ``proto static`` routes, which is how
they are told from the connected ones when read back: ``set_routes`` makes them exactly
the goal's. A route whose next hop is not reachable yet (the interface toward it is set
after this one) is skipped: setting that interface programs it. A VM's default route goes
through its subnet's gateway, as DHCP would give it.

Imports only ``cascade.errors`` and pyroute2.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterable, Iterator
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from cascade.errors import Unavailable

AF_INET = 2
RTPROT_STATIC = 4
MAIN_TABLE = 254
DEFAULT = "0.0.0.0/0"
TIMEOUT = 30

Route = tuple[str, str]  # (destination prefix, next hop)


def forward(namespace: str) -> None:
    """Turn IPv4 forwarding on in the namespace (``/proc/sys/net`` is the writer's own)."""
    command = [
        "ip",
        "netns",
        "exec",
        namespace,
        "sh",
        "-c",
        "echo 1 >/proc/sys/net/ipv4/ip_forward",
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise Unavailable(f"forwarding in {namespace!r}: {error}") from error
    if done.returncode != 0:
        raise Unavailable(f"forwarding in {namespace!r}: {done.stderr.strip()}")


def _routes(ipr: Any) -> Iterator[tuple[str, str | None, int]]:
    """(destination prefix, next hop or None, protocol) of each IPv4 main-table route."""
    for msg in ipr.route("dump", family=AF_INET):
        if msg.get_attr("RTA_TABLE") not in (None, MAIN_TABLE):
            continue
        network = msg.get_attr("RTA_DST") or DEFAULT.partition("/")[0]
        destination = f"{network}/{msg['dst_len']}"
        yield destination, msg.get_attr("RTA_GATEWAY"), int(msg["proto"])


def read_routes(ipr: Any) -> tuple[Route, ...]:
    """The router's extra routes (``proto static``), sorted."""
    return tuple(
        sorted((d, hop) for d, hop, proto in _routes(ipr) if hop and proto == RTPROT_STATIC)
    )


def _replace(ipr: Any, destination: str, nexthop: str) -> None:
    try:
        ipr.route("replace", dst=destination, gateway=nexthop, proto=RTPROT_STATIC)
    except NetlinkError as error:
        if error.code != errno.ENETUNREACH:  # no interface toward it yet
            raise


def set_routes(ipr: Any, routes: Iterable[Route]) -> None:
    """Make the namespace's extra routes exactly ``routes``."""
    wanted = set(routes)
    for destination, nexthop in set(read_routes(ipr)) - wanted:
        ipr.route("del", dst=destination, gateway=nexthop, proto=RTPROT_STATIC)
    for destination, nexthop in sorted(wanted):
        _replace(ipr, destination, nexthop)


def read_gateway(ipr: Any) -> str | None:
    """The next hop of the namespace's default route, if it has one."""
    return next((hop for d, hop, _ in _routes(ipr) if d == DEFAULT and hop), None)


def set_gateway(ipr: Any, gateway: str | None) -> None:
    """Give the namespace a default route through ``gateway`` (none when None)."""
    held = read_gateway(ipr)
    if held == gateway:
        return
    if held is not None:
        ipr.route("del", dst=DEFAULT, gateway=held)
    if gateway is not None:
        _replace(ipr, DEFAULT, gateway)
