"""Remote neighbours written in netlink batches: 2,000 in one update are all in the kernel
(``bridge fdb show``, ``ip neigh show``), a replay changes nothing, a fresh dataplane reads
them back, removing them leaves none, and a refused entry is reported while the others are
written. Needs root (skips otherwise)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from cascade.cli.bench.fdb import neighbours
from cascade.errors import Unavailable
from cascade.fabric.dataplane.base import Neighbour
from cascade.fabric.dataplane.linux import LinuxDataplane
from tests.fabric.netns import ip, require_netns, run_in

NET, VNI, LOCAL_VTEP = "net-batch", 4343, "10.214.255.254"


@contextmanager
def host() -> Iterator[LinuxDataplane]:
    """A dataplane on a namespace it creates (and removes), with network NET."""
    require_netns()
    plane = LinuxDataplane(f"ch-{secrets.token_hex(2)}-fdb", LOCAL_VTEP, create=True)
    try:
        plane.ensure_network(NET, VNI)
        yield plane
    finally:
        plane.shutdown()


def kernel(plane: LinuxDataplane) -> tuple[set[str], set[str], set[str]]:
    """(``MAC dst VTEP`` FDB entries, flood VTEPs, ``IP MAC`` permanent ARP entries)."""
    fdb = run_in(plane.netns, "bridge", "fdb", "show", "dev", f"vx{VNI}").splitlines()
    parts = [line.split() for line in fdb if " dst " in line]
    macs = {f"{p[0]} dst {p[2]}" for p in parts if p[0] != "00:00:00:00:00:00"}
    flood = {p[2] for p in parts if p[0] == "00:00:00:00:00:00"}
    neigh = ip("neigh", "show", "dev", f"vx{VNI}", "nud", "permanent", netns=plane.netns)
    arp = {f"{p[0]} {p[2]}" for p in map(str.split, neigh.splitlines())}
    return macs, flood, arp


@pytest.mark.timeout(120)
def test_two_thousand_neighbours_in_one_update_are_all_written_and_all_removed() -> None:
    table = neighbours(2000, vteps=20)
    with host() as plane:
        plane.update_neighbours(NET, table, [])

        macs, flood, arp = kernel(plane)
        assert macs == {f"{n.mac} dst {n.vtep}" for n in table.values()}
        assert flood == {n.vtep for n in table.values()}
        assert arp == {f"{n.ip} {n.mac}" for n in table.values()}

        plane.update_neighbours(NET, table, [])  # a replay: idempotent
        assert kernel(plane) == (macs, flood, arp)
        fresh = LinuxDataplane(plane.netns, LOCAL_VTEP)  # a restarted agent reads them back
        try:
            assert fresh.neighbours(NET) == {f"mac:{n.mac}": n for n in table.values()}
        finally:
            fresh.close()

        plane.update_neighbours(NET, {}, list(table))
        assert kernel(plane) == (set(), set(), set())
        assert plane.neighbours(NET) == {}


@pytest.mark.timeout(120)
def test_a_refused_entry_is_reported_and_the_others_are_written() -> None:
    table = neighbours(3)
    table["port-1"] = Neighbour("02:00:00:02:00:01", "10.78.9.1", "fd00::1")  # not IPv4
    with host() as plane:
        with pytest.raises(Unavailable, match="2 of 9 FDB/ARP requests were refused"):
            plane.update_neighbours(NET, table, [])

        macs, flood, arp = kernel(plane)
        assert macs == {f"{table[p].mac} dst {table[p].vtep}" for p in ("port-0", "port-2")}
        assert flood == {table["port-0"].vtep, table["port-2"].vtep}
        assert arp == {f"{n.ip} {n.mac}" for n in table.values()}
