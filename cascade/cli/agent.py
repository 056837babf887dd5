"""``cascade agent``: the host agent, applying its host's network state until stopped."""

from __future__ import annotations

import asyncio
import os
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


def _forget_wakeup_fd() -> None:
    """In a forked child: write no signal to the parent's event loop.

    ``add_signal_handler`` makes the C signal handler write every caught signal's number
    to the loop's wakeup socket, which a forked child shares. pyroute2 forks a helper
    child for each socket it opens in a namespace and stops it with SIGTERM, so without
    this the agent would read its helper's SIGTERM as its own and stop."""
    signal.set_wakeup_fd(-1)


async def _run(host: str, dataplane: Dataplane, nats_url: str) -> None:
    transport = await NatsTransport.connect(nats_url, name=f"cascade-agent-{host}")
    agent = Agent(host, transport, dataplane)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    os.register_at_fork(after_in_child=_forget_wakeup_fd)
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
