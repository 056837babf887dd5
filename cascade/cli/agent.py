"""``cascade agent``: the host agent, applying its host's network state until stopped.

With the Linux dataplane it programs the host namespace ``--netns``, creating it when it is
absent and removing it again on stop (only a namespace an agent created: one left behind by
a killed agent included, never one an operator made). It logs one line per
change applied at INFO, and stops on SIGINT or SIGTERM, whatever it is waiting on (the NATS
connection included), with one line and no traceback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable
from enum import StrEnum
from typing import Annotated, TypeVar

import typer

from cascade.errors import BadRequest
from cascade.fabric.agent import Agent
from cascade.fabric.dataplane.base import Dataplane
from cascade.fabric.dataplane.memory import MemoryDataplane
from cascade.fabric.transports.nats import NatsTransport

log = logging.getLogger("cascade.agent")

T = TypeVar("T")


class DataplaneKind(StrEnum):
    linux = "linux"
    memory = "memory"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"


def _dataplane(kind: DataplaneKind, netns: str | None, vtep: str) -> Dataplane:
    if kind is DataplaneKind.memory:
        return MemoryDataplane(vtep)
    if not netns:
        raise BadRequest("--netns is required with --dataplane linux")
    from cascade.fabric.dataplane.linux import LinuxDataplane

    plane = LinuxDataplane(netns, vtep, create=True)
    if plane.created_namespace:
        log.info("network namespace %s was created by an agent: removed on stop", netns)
    return plane


def _forget_wakeup_fd() -> None:
    """In a forked child: write no signal to the parent's event loop.

    ``add_signal_handler`` makes the C signal handler write every caught signal's number
    to the loop's wakeup socket, which a forked child shares. pyroute2 forks a helper
    child for each socket it opens in a namespace and stops it with SIGTERM, so without
    this the agent would read its helper's SIGTERM as its own and stop."""
    signal.set_wakeup_fd(-1)


async def _until_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """``work``'s result, or None once ``stop`` is set first (``work`` is then cancelled)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    return None


async def _run(host: str, dataplane: Dataplane, nats_url: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    os.register_at_fork(after_in_child=_forget_wakeup_fd)
    transport = await _until_stopped(
        NatsTransport.connect(nats_url, name=f"cascade-agent-{host}"), stop
    )
    if transport is None:
        return
    agent = Agent(host, transport, dataplane)
    try:
        log.info("agent for host %s on %s (dataplane %s)", host, nats_url, type(dataplane).__name__)
        await _until_stopped(agent.start(), stop)
        await stop.wait()
        log.info("stopping")
    finally:
        await agent.stop()
        await transport.close()


def _logging(level: LogLevel) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pyroute2").setLevel(logging.WARNING)
    logging.getLogger("nats").setLevel(logging.WARNING)


def agent(
    host: Annotated[str, typer.Option(help="This compute host's name in the fabric")],
    vtep: Annotated[str, typer.Option(help="This host's tunnel endpoint (underlay address)")],
    dataplane: Annotated[
        DataplaneKind, typer.Option(help="Where to apply the state")
    ] = DataplaneKind.linux,
    netns: Annotated[
        str | None,
        typer.Option(
            help="Network namespace of the host (linux dataplane); created if absent and then "
            "removed on stop"
        ),
    ] = None,
    nats: Annotated[str, typer.Option(help="NATS server of the fabric")] = "nats://127.0.0.1:4222",
    log_level: Annotated[
        LogLevel, typer.Option(help="info: one line per change applied")
    ] = LogLevel.info,
) -> None:
    """Run the host agent: subscribe, resync, apply changes, acknowledge, until SIGTERM."""
    _logging(log_level)
    plane = _dataplane(dataplane, netns, vtep)
    try:
        asyncio.run(_run(host, plane, nats))
    finally:
        plane.shutdown()
    log.info("stopped")
