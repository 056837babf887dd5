"""A throwaway NATS cluster on loopback: ``size`` nats-server processes joined by routes,
for the tests and benchmarks that need the fabric to outlive one node.

Each node listens for clients, routes and monitoring on free 127.0.0.1 ports and keeps its
configuration and log in a temporary directory; ``nats_cluster`` starts them, waits until
every node has a route to every other, and stops them (and removes the directory) however
the block ends. No JetStream: the fabric runs on core NATS. ``kill`` SIGKILLs one node and
``restart`` brings it back on the same ports; ``varz`` reads a node's counters (messages
and bytes in and out, connections, memory) from its monitoring endpoint. A port found free
can be bound by another process before its node binds it: the node exits saying so, and the
cluster starts again on new ports (``cascade.retry``).
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cascade.errors import Unavailable
from cascade.retry import Backoff, until_deadline

PORT_RANGE = (20_000, 32_000)
PORT_RACE = Backoff(first=0.05, cap=0.5)  # between starts when a port was taken meanwhile
READY_TIMEOUT = 30.0  # seconds for the nodes to listen and route to each other
STOP_GRACE = 5.0


def _free_port() -> int:
    """A port nobody listens on, below Linux's ephemeral range (32768 up), so that no
    outgoing connection (a route being dialled) takes it before its node binds it."""
    while True:
        port = random.randrange(*PORT_RANGE)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


class PortTaken(Unavailable):
    """A node could not bind a port that was free when it was chosen."""


def _binary() -> str:
    found = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin:/sbin")
    if found is None:
        raise Unavailable("nats-server is not installed (Debian package nats-server)")
    return found


@dataclass
class Node:
    name: str
    port: int
    route_port: int
    monitor_port: int
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class NatsCluster:
    def __init__(self, size: int, directory: Path, max_pending_mb: int = 64) -> None:
        if size < 1:
            raise ValueError(f"a cluster has at least one node, got {size}")
        self.directory = directory
        self.max_pending_mb = max_pending_mb  # per client, beyond which it is cut off
        self.binary = _binary()
        self.nodes = [Node(f"n{i}", _free_port(), _free_port(), _free_port()) for i in range(size)]
        self._killed: set[int] = set()

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def index_of(self, url: str | None) -> int:
        """The node serving client URL ``url``."""
        for index, node in enumerate(self.nodes):
            if node.url == url:
                return index
        raise ValueError(f"{url} is no node of this cluster")

    def _config(self, node: Node) -> Path:
        routes = ", ".join(
            f"nats-route://127.0.0.1:{other.route_port}"
            for other in self.nodes
            if other is not node
        )
        text = (
            f"server_name: {node.name}\n"
            f"listen: 127.0.0.1:{node.port}\n"
            f"http: 127.0.0.1:{node.monitor_port}\n"
            'write_deadline: "60s"\n'
            f"max_pending: {self.max_pending_mb * 2**20}\n"
            "cluster {\n"
            "  name: cascade\n"
            f"  listen: 127.0.0.1:{node.route_port}\n"
            f"  routes: [{routes}]\n"
            "}\n"
        )
        path = self.directory / f"{node.name}.conf"
        path.write_text(text)
        return path

    def _launch(self, node: Node) -> None:
        log = self.directory / f"{node.name}.log"
        with log.open("ab") as out:
            node.proc = subprocess.Popen(
                [self.binary, "-c", str(self._config(node))],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def start(self) -> None:
        """Every node launched and routed to every other; started again on new ports while
        a node finds one of its ports taken, within ``READY_TIMEOUT``."""
        until_deadline(
            PORT_RACE, READY_TIMEOUT, lambda error: isinstance(error, PortTaken), self._start
        )

    def _start(self) -> None:
        for node in self.nodes:
            self._launch(node)
        try:
            self.wait_routed()
        except Unavailable as failure:
            if "address already in use" not in self.log_tail():
                raise
            self.stop()
            self._new_ports()
            raise PortTaken(str(failure)) from failure

    def _new_ports(self) -> None:
        """Fresh ports for every node (each one's routes name the others'), and fresh logs."""
        for node in self.nodes:
            node.port, node.route_port, node.monitor_port = (_free_port() for _ in range(3))
            (self.directory / f"{node.name}.log").unlink(missing_ok=True)

    def varz(self, index: int, page: str = "varz") -> dict[str, Any]:
        """The node's monitoring page ``page`` (``varz``, ``routez``, ``connz``...)."""
        url = f"http://127.0.0.1:{self.nodes[index].monitor_port}/{page}"
        with urllib.request.urlopen(url, timeout=2) as response:
            body: dict[str, Any] = json.loads(response.read())
            return body

    def _routed(self, index: int, want: int) -> bool:
        try:
            return int(self.varz(index, "routez").get("num_routes", 0)) >= want
        except OSError:
            return False

    def wait_routed(self) -> None:
        """Until every node not killed routes to every other (raising if one exited)."""
        deadline = time.monotonic() + READY_TIMEOUT
        up = [i for i in range(len(self.nodes)) if i not in self._killed]
        while not all(self._routed(i, len(up) - 1) for i in up):
            dead = [self.nodes[i].name for i in up if not self.nodes[i].alive]
            if dead:
                raise Unavailable(f"nats-server {', '.join(dead)} exited: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise Unavailable(f"the NATS cluster did not form: {self.log_tail()}")
            time.sleep(0.05)

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (no goodbye to its clients or routes)."""
        self._killed.add(index)
        proc = self.nodes[index].proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def restart(self, index: int) -> None:
        self._killed.discard(index)
        self._launch(self.nodes[index])
        self.wait_routed()

    def stop(self) -> None:
        for node in self.nodes:
            if node.alive and node.proc is not None:
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is None:
                continue
            try:
                node.proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()

    def log_tail(self, lines: int = 5) -> str:
        tails = []
        for node in self.nodes:
            log = self.directory / f"{node.name}.log"
            text = log.read_text(errors="replace").splitlines() if log.exists() else []
            tails.append(f"{node.name}: " + " | ".join(text[-lines:]))
        return "; ".join(tails)


@contextmanager
def nats_cluster(size: int = 3, max_pending_mb: int = 64) -> Iterator[NatsCluster]:
    """A started cluster of ``size`` nodes, stopped and removed when the block ends."""
    with tempfile.TemporaryDirectory(prefix="cascade-nats-") as directory:
        cluster = NatsCluster(size, Path(directory), max_pending_mb)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()
