"""Serving a site-sim: its listening socket, bound before anything says the site is serving
(a busy port is one clear error, not a banner followed by a bind failure), and a server whose
socket can be closed and reopened: an outage in which the whole site refuses connections (a
fibre cut, a site down) and then comes back, state intact."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from cascade.errors import Conflict


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (as uvicorn binds one), ready to hand to the server;
    a port in use or an address that cannot be bound is a ``Conflict`` naming it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise Conflict(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    listener.set_inheritable(True)
    return listener


class ReopenableServer(uvicorn.Server):
    """uvicorn's server, whose listening socket can be closed for a while."""

    async def outage(self, seconds: float) -> None:
        """Refuse connections for ``seconds``, then listen again on the same address."""
        for server in self.servers:
            server.close()
        await asyncio.sleep(seconds)
        config = self.config

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            # As uvicorn's own startup builds it.
            protocol: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
                config=config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                _loop=_loop,
            )
            return protocol

        loop = asyncio.get_running_loop()
        reopened = await loop.create_server(
            create_protocol, host=config.host, port=config.port, backlog=config.backlog
        )
        self.servers = [reopened]
