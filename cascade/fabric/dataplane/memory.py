"""The in-memory dataplane: the same tables as the Linux one, for simulated fleets.

Neighbour tables are persistent maps (``immutables.Map``, a HAMT): an update copies only
the path to the changed entry, so a million simulated hosts that received the same
snapshot share one table in memory, and each later update costs a few hundred bytes per
host instead of a copy of the whole table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import immutables

from cascade.errors import Conflict
from cascade.fabric.dataplane.base import Dataplane, LocalPort, Neighbour

EMPTY: immutables.Map[str, Neighbour] = immutables.Map()


class MemoryDataplane(Dataplane):
    enforces_rules = False  # it keeps ports' rules but filters nothing

    def __init__(self, local_vtep: str) -> None:
        self.local_vtep = local_vtep
        self._vnis: dict[str, int] = {}
        self._ports: dict[str, LocalPort] = {}
        self._tables: dict[str, immutables.Map[str, Neighbour]] = {}

    def ensure_network(self, network_id: str, vni: int) -> None:
        self._vnis[network_id] = vni
        self._tables.setdefault(network_id, EMPTY)

    def remove_network(self, network_id: str) -> None:
        self._vnis.pop(network_id, None)
        self._tables.pop(network_id, None)
        for port_id in [p.port_id for p in self._ports.values() if p.network_id == network_id]:
            del self._ports[port_id]

    def set_port(self, port: LocalPort) -> None:
        if port.network_id not in self._vnis:
            raise Conflict(f"network {port.network_id} is not present on this host")
        self._ports[port.port_id] = port

    def remove_port(self, port_id: str) -> None:
        self._ports.pop(port_id, None)

    def update_neighbours(
        self, network_id: str, upserts: Mapping[str, Neighbour], removals: Iterable[str]
    ) -> None:
        # Map.set/delete per entry: a mutation context costs far more for the usual one or
        # two entries of a delta (measured: ~30 us against ~2 us on a 100,000-entry map).
        table = self._tables.get(network_id, EMPTY)
        for port_id in removals:
            if port_id in table:
                table = table.delete(port_id)
        for port_id, neighbour in upserts.items():
            table = table.set(port_id, neighbour)
        self._tables[network_id] = table

    def replace_neighbours(self, network_id: str, table: Mapping[str, Neighbour]) -> None:
        self._tables[network_id] = (
            table if isinstance(table, immutables.Map) else immutables.Map(table)
        )

    def networks(self) -> dict[str, int]:
        return dict(self._vnis)

    def ports(self) -> dict[str, LocalPort]:
        return dict(self._ports)

    def neighbours(self, network_id: str) -> Mapping[str, Neighbour]:
        return self._tables.get(network_id, EMPTY)
