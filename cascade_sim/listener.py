"""Serving a site-sim over a socket that can be closed and reopened: an outage in which the
whole site refuses connections (a fibre cut, a site down) and then comes back, state intact."""

from __future__ import annotations

import asyncio

import uvicorn


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
