"""``cascade agent``: the host agent, applying its host's network state until stopped."""

from __future__ import annotations

import asyncio
import signal
from enum import StrEnum
from typing import Annotated

import typer

from cascade.errors import BadRequest
from cascade.fabric.agent import Agent
from cascade.fabric.dataplane.base import Dataplane
from cascade.fabric.dataplane.memory import MemoryDataplane
from cascade.fabric.transports.nats import NatsTransport


class DataplaneKind(StrEnum):
    linux = "linux"
    memory = "memory"


def _dataplane(kind: DataplaneKind, netns: str | None, vtep: str) -> Dataplane:
    if kind is DataplaneKind.memory:
        return MemoryDataplane(vtep)
    if not netns:
        raise BadRequest("--netns is required with --dataplane linux")
    from cascade.fabric.dataplane.linux import LinuxDataplane

    return LinuxDataplane(netns, vtep)


async def _run(host: str, dataplane: Dataplane, nats_url: str) -> None:
    transport = await NatsTransport.connect(nats_url, name=f"cascade-agent-{host}")
    agent = Agent(host, transport, dataplane)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await agent.start()
        await stop.wait()
    finally:
        await agent.stop()
        await transport.close()
        dataplane.close()


def agent(
    host: Annotated[str, typer.Option(help="This compute host's name in the fabric")],
    vtep: Annotated[str, typer.Option(help="This host's tunnel endpoint (underlay address)")],
    dataplane: Annotated[
        DataplaneKind, typer.Option(help="Where to apply the state")
    ] = DataplaneKind.linux,
    netns: Annotated[
        str | None, typer.Option(help="Network namespace of the host (linux dataplane)")
    ] = None,
    nats: Annotated[str, typer.Option(help="NATS server of the fabric")] = "nats://127.0.0.1:4222",
) -> None:
    """Run the host agent: subscribe, resync, apply changes, acknowledge, until SIGTERM."""
    asyncio.run(_run(host, _dataplane(dataplane, netns, vtep), nats))
