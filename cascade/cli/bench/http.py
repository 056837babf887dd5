"""What the benchmarks add to ``cascade.cli.clients``: latency statistics, rates measured
in-process for baselines, and a raw client.

Every call goes through ``cascade.cli.clients`` (keystoneauth1) but one: ``KeepAliveConnection`` is
a minimal raw keep-alive HTTP/1.1 client kept for exactly the loops whose rate is the
measurement and which keystoneauth1 would cap well below what the server does: token
validation and token-method issue (``RAW_LOOPS``; figures in docs/benchmarks.md, "Benchmark
HTTP clients", from ``cascade bench clients``). Both clients offer the same ``request`` and
``call``, so a loop runs unchanged through either.
"""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Callable

from keystoneauth1 import session as ks_session

from cascade.cli.clients import Client, Reply, SessionClient
from cascade.errors import CascadeError

# Loops timed through KeepAliveConnection: through keystoneauth1 they would run at well under
# the server's rate (``cascade bench clients``). Every other call goes through keystoneauth1.
RAW_LOOPS = frozenset({"validate", "rescope"})


class KeepAliveConnection(Client):
    """A raw keep-alive HTTP/1.1 connection to 127.0.0.1, kept for the ``RAW_LOOPS`` only:
    it writes a request in one piece and parses the answer's head by hand. keystoneauth1 plus
    requests adds ~0.7 ms a request on this machine, as much as Cascade takes to validate a
    token, so through it those loops would time the client library (``cascade bench
    clients``). Only for servers that write an answer in one piece, as uvicorn does: against
    one that writes the head and the body apart (Keystone under ``wsgiref``) every request
    waits for a delayed ACK (~40 ms). ``token``, if given, is sent as ``X-Auth-Token`` unless
    a request names its own."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self._socket = socket.create_connection(("127.0.0.1", port), timeout=120)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""
        self._token = token

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Reply:
        sent = {"X-Auth-Token": self._token} if self._token else {}
        sent.update(headers or {})
        lines = [
            f"{method} {path} HTTP/1.1",
            "Host: 127.0.0.1",
            f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in sent.items()),
        ]
        self._socket.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += self._receive()
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        reply_headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            reply_headers[name.strip().lower()] = value.strip()
        length = 0 if method == "HEAD" else int(reply_headers.get("content-length", "0"))
        while len(rest) < length:
            rest += self._receive()
        self._buffer = rest[length:]
        return Reply(int(status_line[9:12]), reply_headers, rest[:length])

    def _receive(self) -> bytes:
        chunk = self._socket.recv(1 << 20)
        if not chunk:
            raise CascadeError("the server closed the connection")
        return chunk

    def close(self) -> None:
        self._socket.close()


def connect(port: int, raw: bool) -> Client:
    """One keep-alive connection to the server on 127.0.0.1:``port``: the raw client, or
    keystoneauth1 (a session without auth: requests carry their own tokens, so both clients
    send the same bytes but for the User-Agent)."""
    if raw:
        return KeepAliveConnection(port)
    return SessionClient(ks_session.Session(), f"http://127.0.0.1:{port}")


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100)[q - 1]


def per_second(action: Callable[[], object], seconds: float) -> float:
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        action()
        count += 1
    return count / (time.perf_counter() - started)
