"""Hosts as network namespaces, for tests that program a real Linux dataplane.

``underlay(count)`` creates ``count`` host namespaces joined by an underlay bridge that
lives in its own namespace, and on exit deletes them together with the VM namespaces of
the ports programmed in them (``remove_hosts``), and nothing else: tests running at the
same time keep theirs. ``require_netns()`` skips (fails when CI=true) where
namespaces cannot be made; ``ping`` runs one ping from inside a namespace.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from cascade.fabric.dataplane.names import PORT_ALIAS, router_namespace, vm_namespace

PREFIX = "ch-"


@dataclass(frozen=True)
class Host:
    netns: str
    vtep: str


def ip(*args: str, netns: str | None = None) -> str:
    """Run ``ip`` (inside ``netns`` if given), return stdout; raise on failure."""
    command = ["ip", "-n", netns, *args] if netns else ["ip", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")
    return done.stdout


def run_in(netns: str, *command: str) -> str:
    """Run any command inside a namespace (e.g. ``bridge fdb show``), return stdout."""
    return ip("netns", "exec", netns, *command)


def namespaces() -> set[str]:
    return {line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()}


def require_netns() -> None:
    """Skip (fail when CI=true) unless we are root and ``ip netns`` works."""
    reason = ""
    if os.geteuid() != 0:
        reason = "needs root to create network namespaces"
    elif shutil.which("ip") is None:
        reason = "needs iproute2 (ip) to create network namespaces"
    else:
        try:
            namespaces()
        except (RuntimeError, OSError, subprocess.SubprocessError) as error:
            reason = f"ip netns is unavailable: {error}"
    if not reason:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true requires it)")
    pytest.skip(f"{reason}; run as root with iproute2 (CI=true requires it)")


# One ICMP echo over a raw socket, for hosts without a ping binary: exit 0 on a reply.
PING_SCRIPT = """
import os, socket, struct, sys, time
address, ident = sys.argv[1], os.getpid() & 0xFFFF
body = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"cascade-ping"
total = sum(struct.unpack("!%dH" % (len(body) // 2), body))
total = (total >> 16) + (total & 0xFFFF)
total = ~(total + (total >> 16)) & 0xFFFF
packet = body[:2] + struct.pack("!H", total) + body[4:]
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
sock.sendto(packet, (address, 0))
deadline = time.monotonic() + 2
while True:
    sock.settimeout(max(deadline - time.monotonic(), 0.01))
    data, source = sock.recvfrom(2048)
    start = (data[0] & 15) * 4
    kind, _, _, reply_id, _ = struct.unpack("!BBHHH", data[start : start + 8])
    if kind == 0 and reply_id == ident and source[0] == address:
        sys.exit(0)
"""


def ping(vm_netns: str, address: str) -> bool:
    """One ping from inside ``vm_netns``: ``ping`` if installed, else a raw-socket echo."""
    if shutil.which("ping"):
        probe = ["ping", "-c", "1", "-W", "2", address]
    else:
        probe = [sys.executable, "-c", PING_SCRIPT, address]
    command = ["ip", "netns", "exec", vm_netns, *probe]
    return subprocess.run(command, capture_output=True, check=False, timeout=30).returncode == 0


def _build(base: str, count: int) -> list[Host]:
    core = f"{base}-u"
    ip("netns", "add", core)
    ip("link", "set", "lo", "up", netns=core)
    ip("link", "add", "ubr", "type", "bridge", netns=core)
    ip("link", "set", "ubr", "up", netns=core)
    hosts = []
    for i in range(count):
        name, vtep = f"{base}-{i}", f"10.213.0.{i + 1}"
        ip("netns", "add", name)
        ip("link", "set", "lo", "up", netns=name)
        ip(
            "link",
            "add",
            f"u{i}",
            "type",
            "veth",
            "peer",
            "name",
            "underlay",
            "netns",
            name,
            netns=core,
        )
        ip("link", "set", f"u{i}", "master", "ubr", "up", netns=core)
        ip("addr", "add", f"{vtep}/24", "dev", "underlay", netns=name)
        ip("link", "set", "underlay", "up", netns=name)
        hosts.append(Host(name, vtep))
    return hosts


PORT_LINK = re.compile(rf"alias {PORT_ALIAS}([^:\s]+):[^:\s]+(?::([^:\s]+))?")


def vm_namespaces(host_netns: str) -> set[str]:
    """The VM and router namespaces of the ports a Linux dataplane programmed in a host
    namespace (their veths' ifaliases name the ports and routers)."""
    try:
        links = ip("-o", "link", "show", netns=host_netns)
    except RuntimeError:  # the host namespace is gone: so are the veths
        return set()
    return {
        router_namespace(host_netns, router) if router else vm_namespace(host_netns, port_id)
        for port_id, router in PORT_LINK.findall(links)
    }


def remove_hosts(hosts: set[str]) -> None:
    """Delete these host namespaces and the VM namespaces of their ports."""
    doomed = set(hosts).union(*(vm_namespaces(host) for host in hosts)) & namespaces()
    for name in sorted(doomed):
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def _cleanup(before: set[str], base: str) -> None:
    remove_hosts({name for name in namespaces() - before if name.startswith(base)})


@contextmanager
def underlay(count: int) -> Iterator[list[Host]]:
    """``count`` hosts (namespaces ``ch-XXXX-i``, VTEP 10.213.0.{i+1}) on one underlay."""
    before = namespaces()
    base = PREFIX + secrets.token_hex(2)
    try:
        yield _build(base, count)
    finally:
        _cleanup(before, base)
