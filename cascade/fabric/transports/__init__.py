"""The fabric's buses: one interface (``base.Transport``) and its implementations side by
side, ``memory`` (in-process) and ``nats`` (core NATS); ``open_transport`` picks one from the
``fabric_url`` setting."""

from __future__ import annotations

from cascade.fabric.transports.base import Transport
from cascade.fabric.transports.memory import MemoryTransport


async def open_transport(url: str, name: str = "cascade-api") -> Transport:
    """The bus ``url`` names: ``memory`` for the in-process one, or a NATS connection
    (failing fast with ``Unavailable`` when the server cannot be reached)."""
    if url == "memory":
        return MemoryTransport()
    from cascade.fabric.transports.nats import NatsTransport

    return await NatsTransport.connect(url, name=name)
