"""Machines for engine tests: network namespaces on one bridge, each with its own address, and
what it takes to run Cascade's processes on them.

``machines(names)`` makes one namespace per name plus a switch namespace holding the bridge,
joined by veth pairs (10.214.0.x/24), and deletes them all on exit: nothing is added to the
test's own namespace. A ``Machine`` runs callables on a thread that entered its namespace
(the test's HTTP calls to the API and the site), starts children inside it (``ip netns
exec``) and cuts its link (its switch port down). ``postgres_on(machine)`` makes
a machine the database's: PostgreSQL listens on 127.0.0.1 and its local socket only, and
socat inside the machine forwards the machine's address to that socket. Nothing reaches
beyond the namespaces the test made and PostgreSQL's socket.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx

from cascade.cli.embedded import ChildServer, EmbeddedSite
from tests.fabric.netns import ip

T = TypeVar("T")
CLONE_NEWNET = 0x40000000  # linux/sched.h
SUBNET = "10.214.0"
POSTGRES_SOCKET = "/var/run/postgresql/.s.PGSQL.5432"
_libc = ctypes.CDLL(None, use_errno=True)


def enter(netns: str) -> None:
    """Move the calling thread (only it) into ``netns``."""
    descriptor = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if _libc.setns(descriptor, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns {netns}: {os.strerror(error)}")
    finally:
        os.close(descriptor)


class Machine:
    def __init__(self, netns: str, address: str, switch: str, port: str) -> None:
        self.netns = netns
        self.address = address
        self._switch = switch  # the switch's namespace, and the machine's port on it
        self._port = port
        self.launcher = ("ip", "netns", "exec", netns)
        self._thread = ThreadPoolExecutor(1, f"in-{netns}", initializer=enter, initargs=(netns,))

    def run(self, call: Callable[[], T]) -> T:
        """``call()`` from inside this machine's namespace."""
        return self._thread.submit(call).result()

    def cut(self) -> None:
        """Take the machine's switch port down, as when its cable or switch fails: its own
        link loses carrier but keeps its routes, so what it sends goes nowhere and waits
        (a process hangs on the database rather than failing at once)."""
        ip("link", "set", self._port, "down", netns=self._switch)

    def heal(self) -> None:
        ip("link", "set", self._port, "up", netns=self._switch)

    def close(self) -> None:
        self._thread.shutdown(wait=True)


@contextlib.contextmanager
def machines(names: list[str]) -> Iterator[dict[str, Machine]]:
    """A machine per name on one bridge; every namespace is deleted on exit."""
    prefix = f"cm{secrets.token_hex(2)}"
    switch = f"{prefix}-switch"
    made: list[str] = []
    found: dict[str, Machine] = {}
    try:
        ip("netns", "add", switch)
        made.append(switch)
        ip("link", "add", "name", "switch", "type", "bridge", netns=switch)
        ip("link", "set", "switch", "up", netns=switch)
        for index, name in enumerate(names):
            netns = f"{prefix}-{name}"
            ip("netns", "add", netns)
            made.append(netns)
            ip("link", "set", "lo", "up", netns=netns)
            port = f"v-{name}"
            ip("link", "add", "name", port, "type", "veth", "peer", "name", "eth0", "netns", netns,
               netns=switch)  # fmt: skip
            ip("link", "set", port, "master", "switch", "up", netns=switch)
            address = f"{SUBNET}.{index + 1}"
            ip("addr", "add", f"{address}/24", "dev", "eth0", netns=netns)
            ip("link", "set", "eth0", "up", netns=netns)
            found[name] = Machine(netns, address, switch, port)
        yield found
    finally:
        for machine in found.values():
            machine.close()
        for netns in reversed(made):
            with contextlib.suppress(RuntimeError):
                ip("netns", "del", netns)


@contextlib.contextmanager
def postgres_on(machine: Machine, port: int = 5432) -> Iterator[str]:
    """PostgreSQL reached at ``machine``'s address: socat inside the machine, forwarding
    each TCP connection to the server's local socket (a path, so outside every network
    namespace; trusted locally like 127.0.0.1). Yields ``host:port``; stopped on exit."""
    if not Path(POSTGRES_SOCKET).exists():
        raise RuntimeError(f"no PostgreSQL socket at {POSTGRES_SOCKET}")
    listen = f"TCP-LISTEN:{port},bind={machine.address},fork,reuseaddr"
    relay = subprocess.Popen(
        [*machine.launcher, "socat", listen, f"UNIX-CONNECT:{POSTGRES_SOCKET}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its forks end with it
    )
    try:
        deadline = time.monotonic() + 30
        while not machine.run(lambda: _answers(machine.address, port)):
            if relay.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"socat did not listen on {machine.address}:{port}")
            time.sleep(0.1)
        yield f"{machine.address}:{port}"
    finally:
        os.killpg(relay.pid, signal.SIGTERM)
        relay.wait()


def _answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


class NamespacedApi(ChildServer):
    """``cascade up`` (no workers) on an initialised data dir, on ``machine``'s address."""

    health_path = "/v1/health"
    name = "cascade up"

    def __init__(self, data_dir: Path, machine: Machine, env: dict[str, str]) -> None:
        super().__init__(data_dir, None, env, data_dir.parent / "api.log")
        self.machine = machine
        self.launcher = machine.launcher
        self.url = f"http://{machine.address}:{self.port}"

    def command(self) -> list[str]:
        return ["up", "--data-dir", str(self.data_dir), "--host", self.machine.address,
                "--port", str(self.port), "--workers", "0"]  # fmt: skip

    def is_ready(self) -> bool:
        return self.machine.run(super().is_ready)


class NamespacedSite(EmbeddedSite):
    """``cascade site-sim`` on ``machine``'s address: its catalog names that address."""

    def __init__(
        self, name: str, data_dir: Path, password: str, machine: Machine, args: list[str]
    ) -> None:
        super().__init__(name, data_dir, password, args=["--host", machine.address, *args])
        self.machine = machine
        self.launcher = machine.launcher
        self.url = f"http://{machine.address}:{self.port}"

    def is_ready(self) -> bool:
        return self.machine.run(super().is_ready)


class Api:
    """HTTP calls to Cascade's API from inside a machine, with one keep-alive client."""

    def __init__(self, machine: Machine, url: str) -> None:
        self.machine = machine
        self._client = httpx.Client(base_url=url, timeout=60)
        self.token = ""

    def call(self, method: str, path: str, expect: int, **kwargs: Any) -> httpx.Response:
        headers = {"X-Auth-Token": self.token} if self.token else {}
        response = self.machine.run(
            lambda: self._client.request(method, path, headers=headers, **kwargs)
        )
        assert response.status_code == expect, f"{method} {path}: {response.text}"
        return response

    def close(self) -> None:
        self._client.close()
