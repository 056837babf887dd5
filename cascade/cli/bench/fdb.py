"""``cascade bench fdb``: remote neighbours (FDB + permanent ARP entries) programmed per
second by the Linux dataplane, against iproute2's batch mode as the reference.

In a throwaway network namespace (created, and removed at the end), ``entries`` remote
neighbours spread over ``VTEPS`` tunnel endpoints are written once through
``LinuxDataplane.update_neighbours`` on one network, and the same entries on a second
network through ``bridge -batch`` (FDB and flood entries) plus ``ip -batch`` (ARP entries).
Both counts are checked against the kernel. Needs root. With ``--json`` the last line is
one JSON object: ``fdb_entries_per_s``, ``bridge_batch_entries_per_s`` and ``ratio``.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cascade.errors import BadRequest, Unavailable
from cascade.fabric.dataplane.base import Neighbour
from cascade.fabric.dataplane.linux import LinuxDataplane

console = Console(stderr=True, width=130)
VTEPS = 100
LOCAL_VTEP = "10.254.255.254"
NETWORK, REFERENCE = ("bench-fdb", 100), ("bench-fdb-reference", 101)


def neighbours(entries: int, vteps: int = VTEPS) -> dict[str, Neighbour]:
    """``entries`` remote neighbours (distinct MACs and IPs) spread over ``vteps`` VTEPs."""
    return {
        f"port-{i}": Neighbour(
            mac=f"02:00:{i >> 24 & 255:02x}:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
            ip=f"10.{64 + (i >> 16 & 63)}.{i >> 8 & 255}.{i & 255}",
            vtep=f"10.254.{i % vteps // 256}.{i % vteps % 256 + 1}",
        )
        for i in range(entries)
    }


def _run(command: list[str], batch: str) -> None:
    done = subprocess.run(command, input=batch, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise Unavailable(f"{' '.join(command)}: {done.stderr.strip()[:300]}")


def _reference(netns: str, vni: int, table: dict[str, Neighbour]) -> float:
    """Seconds for ``bridge -batch`` and ``ip -batch`` to write the same entries."""
    device = f"vx{vni}"
    fdb = [f"fdb append 00:00:00:00:00:00 dev {device} dst {v} self permanent" for v in
           sorted({n.vtep for n in table.values()})]  # fmt: skip
    fdb += [f"fdb replace {n.mac} dev {device} dst {n.vtep} self permanent" for n in table.values()]
    arp = [
        f"neigh replace {n.ip} lladdr {n.mac} dev {device} nud permanent" for n in table.values()
    ]
    started = time.perf_counter()
    _run(["bridge", "-n", netns, "-batch", "-"], "\n".join(fdb) + "\n")
    _run(["ip", "-n", netns, "-batch", "-"], "\n".join(arp) + "\n")
    return time.perf_counter() - started


def _count(netns: str, vni: int) -> tuple[int, int]:
    """(FDB entries with a MAC, permanent ARP entries) on the network's VXLAN device."""
    device = f"vx{vni}"
    fdb = subprocess.run(["bridge", "-n", netns, "fdb", "show", "dev", device],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    arp = subprocess.run(["ip", "-n", netns, "neigh", "show", "dev", device, "nud", "permanent"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    macs = [
        line for line in fdb.splitlines() if " dst " in line and "00:00:00:00:00:00" not in line
    ]
    return len(macs), len(arp.splitlines())


def measure_fdb(entries: int = 10000) -> dict[str, float]:
    """Entries per second written by the dataplane and by iproute2's batch mode."""
    if entries < 1:
        raise BadRequest(f"entries must be positive, got {entries}")
    table = neighbours(entries)
    plane = LinuxDataplane(f"cbench-fdb-{secrets.token_hex(3)}", LOCAL_VTEP, create=True)
    try:
        for network_id, vni in (NETWORK, REFERENCE):
            plane.ensure_network(network_id, vni)
        started = time.perf_counter()
        plane.update_neighbours(NETWORK[0], table, [])
        ours = time.perf_counter() - started
        reference = _reference(plane.netns, REFERENCE[1], table)
        for _, vni in (NETWORK, REFERENCE):
            if _count(plane.netns, vni) != (entries, entries):
                raise Unavailable(f"vx{vni} holds {_count(plane.netns, vni)} of {entries} entries")
    finally:
        plane.shutdown()
    return {
        "fdb_entries_per_s": round(entries / ours, 1),
        "bridge_batch_entries_per_s": round(entries / reference, 1),
        "ratio": round(reference / ours, 3),
    }


def fdb(
    entries: Annotated[int, typer.Option(help="Remote neighbours to program")] = 10000,
    json_out: Annotated[bool, typer.Option("--json", help="Print figures as JSON last")] = False,
) -> None:
    """Time programming remote neighbours (FDB + ARP) against bridge/ip -batch."""
    with console.status(f"programming {entries:,} remote neighbours twice"):
        figures = measure_fdb(entries)
    table = Table(title=f"bench fdb: {entries:,} remote neighbours (FDB + ARP) in one update")
    for column in ("writer", "entries/s"):
        table.add_column(column, justify="right")
    table.add_row("LinuxDataplane.update_neighbours", f"{figures['fdb_entries_per_s']:,.0f}")
    table.add_row("bridge -batch + ip -batch", f"{figures['bridge_batch_entries_per_s']:,.0f}")
    console.print(table)
    console.print(f"ratio (dataplane / iproute2 batch): {figures['ratio']}")
    if json_out:
        print(json.dumps({"entries": entries, **figures}))
