"""What the benchmarks share: a minimal keep-alive HTTP/1.1 client (the standard library's
parses headers through the email package and would measure the client more than the server),
latency statistics, and rates measured in-process for baselines."""

from __future__ import annotations

import json
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class KeepAliveConnection:
    def __init__(self, port: int) -> None:
        self._socket = socket.create_connection(("127.0.0.1", port), timeout=120)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Reply:
        lines = [
            f"{method} {path} HTTP/1.1",
            "Host: 127.0.0.1",
            f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
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

    def json(
        self, method: str, path: str, token: str | None = None, body: Any = None, expect: int = 200
    ) -> Reply:
        """A JSON request that must answer ``expect``."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["X-Auth-Token"] = token
        reply = self.request(
            method, path, headers, b"" if body is None else json.dumps(body).encode()
        )
        if reply.status != expect:
            raise RuntimeError(f"{method} {path} answered {reply.status}: {reply.body[:200]!r}")
        return reply

    def _receive(self) -> bytes:
        chunk = self._socket.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        return chunk

    def close(self) -> None:
        self._socket.close()


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
