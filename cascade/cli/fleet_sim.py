"""``cascade fleet-sim``: N simulated hosts (memory agents) in one process, one port joining
their network, and what it took: seconds to converge, messages, bytes, peak memory."""

from __future__ import annotations

import asyncio
import json
import resource
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cascade.errors import BadRequest
from cascade.fabric.fleet import measure_join
from cascade.fabric.transports.base import Transport
from cascade.fabric.transports.memory import MemoryTransport
from cascade.fabric.transports.nats import NatsTransport

console = Console(stderr=True)
NATS_LIMIT = 100_000  # one process: larger fleets use the in-process bus


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _simulate(hosts: int, nats: str | None, changes: int) -> dict[str, Any]:
    transport: Transport = (
        MemoryTransport() if nats is None else await NatsTransport.connect(nats, "fleet-sim")
    )
    with tempfile.TemporaryDirectory(prefix="cascade-fleet-") as data_dir:
        figures = await measure_join(Path(data_dir), hosts, transport, changes)
    return {
        **figures.as_dict(),
        "transport": "memory" if nats is None else "nats",
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def fleet_sim(
    hosts: Annotated[int, typer.Option(help="Hosts in the fleet, each with one port")] = 1000,
    nats: Annotated[
        str | None, typer.Option(help=f"Use this NATS server (at most {NATS_LIMIT} hosts)")
    ] = None,
    changes: Annotated[
        int, typer.Option(help="Ports that join, one change each, back to back")
    ] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print figures as JSON last")] = False,
) -> None:
    """Simulate a fleet and time ports joining a network that spans all of it."""
    if hosts < 1 or changes < 1:
        raise BadRequest(f"--hosts and --changes must be at least 1, got {hosts}, {changes}")
    if nats is not None and hosts > NATS_LIMIT:
        raise BadRequest(f"--nats runs at most {NATS_LIMIT} hosts in one process, got {hosts}")
    with console.status(f"simulating {hosts:,} hosts"):
        figures = asyncio.run(_simulate(hosts, nats, changes))
    table = Table(title=f"fleet-sim: one port joins a network over {hosts:,} hosts")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int | float) else str(value))
    console.print(table)
    if as_json:
        print(json.dumps(figures))
