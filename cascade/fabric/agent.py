"""The host agent: receives its host's goal state over the fabric and applies it.

It listens on its partition subject (skipping other hosts' messages unread) and on one
subject per network it has ports on, joining a network when its first port arrives and
leaving when the last one goes. Every message carries a revision: the next one is applied,
an old or duplicate one ignored, and one that skips ahead is held back while the agent asks
for a snapshot (a resync), after which the held messages that follow it are applied. A goal
message from the controller makes it resync whatever trails and acknowledge again, which
repairs lost messages and lost acknowledgements alike. On start it asks for its host
snapshot and reconciles the dataplane to it, removing whatever the goal no longer holds,
so an agent killed mid-stream converges to exactly the goal state after a restart. When
the bus reconnects (a NATS node died) it asks for its goal, whose answer makes it resync
whatever went by meanwhile.

Each change it applies to the dataplane is one INFO line (a port set or removed, a network
joined or left, a neighbour delta or table, a snapshot reconciled). Every acknowledgement
says whether the dataplane enforces the ports' security rules (``e``), so the control plane
never counts rules as applied where nothing enforces them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from cascade.fabric import messages
from cascade.fabric.addressing import host_subject, network_subject
from cascade.fabric.controller import ACK_SUBJECT, SYNC_SUBJECT
from cascade.fabric.dataplane.base import Dataplane, LocalPort, Neighbour
from cascade.fabric.transports.base import Message, Subscription, Transport

log = logging.getLogger(__name__)

HOST_KEY = ""  # the resync key of the host's own snapshot; networks use their id


class Agent:
    def __init__(
        self, host: str, transport: Transport, dataplane: Dataplane, resync_after: float = 1.0
    ) -> None:
        self.host = host
        self.transport = transport
        self.dataplane = dataplane
        self.resync_after = resync_after
        self.revision = -1  # host revision applied; -1 until the first snapshot
        self.networks: dict[str, int] = {}  # applied revision per network (0: awaiting snapshot)
        self.ports: dict[str, LocalPort] = {}
        self.resyncs = 0
        self.received = 0  # messages for this host (its own unicast and its networks')
        self._prefix = messages.host_prefix(host)
        self._subs: dict[str, Subscription] = {}
        self._held_host: dict[int, messages.Body] = {}
        self._held_net: dict[str, dict[int, messages.Body]] = {}
        self._pages: dict[str, tuple[int, dict[int, list[list[str]]]]] = {}
        self._asked: dict[str, float] = {}
        # One INFO line per change applied; checked once (a simulated fleet of a million
        # agents logs nothing and must not pay for a logging call per agent and change).
        self.verbose = log.isEnabledFor(logging.INFO)

    async def start(
        self,
        snapshot: messages.Body | None = None,
        tables: dict[str, tuple[int, int, Mapping[str, Neighbour]]] | None = None,
    ) -> None:
        """Subscribe and fetch the host snapshot. A simulated fleet hands the snapshot and
        the network tables ({network: (revision, vni, table)}) over in-process instead."""
        sub = await self.transport.subscribe(host_subject(self.host), self._on_unicast)
        self._subs[HOST_KEY] = sub
        self.transport.on_reconnect(self.resync)
        for network_id, (revision, vni, table) in (tables or {}).items():
            self._subs[network_id] = await self.transport.subscribe(
                network_subject(network_id), self._on_multicast
            )
            self.apply_network_table(network_id, revision, vni, table)
        if snapshot is None:
            await self._ask(HOST_KEY)
        else:
            await self._host_snapshot(snapshot)

    async def stop(self) -> None:
        for sub in self._subs.values():
            await sub.unsubscribe()
        self._subs.clear()

    # --- receiving ----------------------------------------------------------------------

    async def _on_unicast(self, message: Message) -> None:
        body = messages.for_me(message.data, self._prefix)
        if body is None:
            return
        self.received += 1
        kind = body["t"]
        if kind == messages.HOST_DELTA:
            await self._host_delta(body)
        elif kind == messages.HOST_SNAPSHOT:
            await self._host_snapshot(body)
        elif kind == messages.NET_SNAPSHOT:
            await self._net_snapshot_page(body)
        elif kind == messages.GOAL:
            await self._goal(body)

    async def _on_multicast(self, message: Message) -> None:
        self.received += 1
        await self._net_delta(messages.decode(message.data))

    async def _host_delta(self, body: messages.Body) -> None:
        revision = body["r"]
        if revision <= self.revision:
            return
        self._held_host[revision] = body
        await self._drain_host()

    async def _drain_host(self) -> None:
        applied = False
        while self.revision >= 0 and (body := self._held_host.pop(self.revision + 1, None)):
            for port_id in body["rm"]:
                await self._remove_port(port_id)
            table_follows = set(body.get("tf", ()))
            for entry in body["up"]:
                port = messages.local_port(entry)
                await self._set_port(port, port.network_id in table_follows)
            self.revision = body["r"]
            applied = True
        self._held_host = {r: b for r, b in self._held_host.items() if r > self.revision}
        if self._held_host or self.revision < 0:
            await self._ask(HOST_KEY)
        if applied:
            await self._ack()

    async def _host_snapshot(self, body: messages.Body) -> None:
        if body["r"] < self.revision:
            return
        goal = {p.port_id: p for p in map(messages.local_port, body["ports"])}
        for port_id in set(self.ports) | set(self.dataplane.ports()):
            if port_id not in goal:
                await self._remove_port(port_id)
        for port in goal.values():
            await self._set_port(port)
        wanted = {p.network_id for p in goal.values()}
        for network_id in set(self.dataplane.networks()) - wanted:
            await self._leave(network_id)
        self.revision = body["r"]
        self._asked.pop(HOST_KEY, None)
        if self.verbose:
            log.info(
                "%s: host snapshot at revision %d applied: %d ports",
                self.host,
                self.revision,
                len(goal),
            )
        await self._drain_host()
        await self._ack()

    async def _net_delta(self, body: messages.Body) -> None:
        network_id, revision = body["n"], body["r"]
        have = self.networks.get(network_id)
        if have is None or revision <= have:
            return
        self._held_net.setdefault(network_id, {})[revision] = body
        await self._drain_net(network_id)

    async def _drain_net(self, network_id: str) -> None:
        held = self._held_net.get(network_id, {})
        have = self.networks[network_id]
        applied = False
        while have > 0 and (body := held.pop(have + 1, None)):
            upserts = messages.neighbours(body["up"])
            self.dataplane.update_neighbours(network_id, upserts, body["rm"])
            have = self.networks[network_id] = body["r"]
            if self.verbose:
                log.info(
                    "%s: network %s at revision %d: %d neighbours set, %d removed",
                    self.host, network_id, have, len(upserts), len(body["rm"]),
                )  # fmt: skip
            applied = True
        for stale in [r for r in held if r <= have]:
            del held[stale]
        if not held:  # an empty dict kept per network cost ~200 B a host in a large fleet
            self._held_net.pop(network_id, None)
        if held or have == 0:
            await self._ask(network_id)
        if applied:
            await self._ack()

    async def _net_snapshot_page(self, body: messages.Body) -> None:
        network_id, revision = body["n"], body["r"]
        have = self.networks.get(network_id)
        if have is None or revision <= have:
            return
        pages_rev, pages = self._pages.get(network_id, (revision, {}))
        if pages_rev != revision:
            if pages_rev > revision:
                return
            pages = {}
        pages[body["pg"]] = body["up"]
        self._pages[network_id] = (revision, pages)
        if len(pages) < body["of"]:
            return
        del self._pages[network_id]
        table = messages.neighbours([e for page in sorted(pages) for e in pages[page]])
        self.apply_network_table(network_id, revision, body["vni"], table)
        self.resyncs += 1
        await self._drain_net(network_id)
        await self._ack()

    def apply_network_table(
        self, network_id: str, revision: int, vni: int, table: Mapping[str, Neighbour]
    ) -> None:
        """Make a network exactly ``table`` at ``revision`` (a snapshot, or a simulated
        fleet handing every agent the same table)."""
        self.dataplane.ensure_network(network_id, vni)
        self.dataplane.replace_neighbours(network_id, table)
        self.networks[network_id] = revision
        self._asked.pop(network_id, None)
        if self.verbose:
            log.info(
                "%s: network %s table at revision %d: %d neighbours",
                self.host, network_id, revision, len(table),
            )  # fmt: skip

    async def _goal(self, body: messages.Body) -> None:
        if body["r"] > self.revision:
            await self._ask(HOST_KEY, force=True)
        for network_id, revision in body["n"].items():
            if self.networks.get(network_id, revision) < revision:
                await self._ask(network_id, force=True)
        await self._ack()

    # --- applying -----------------------------------------------------------------------

    async def _set_port(self, port: LocalPort, table_follows: bool = False) -> None:
        if port.network_id not in self.networks:
            await self._join(port.network_id, port.vni, table_follows)
        self.dataplane.set_port(port)  # again even if unchanged: repairs what drifted
        changed = self.ports.get(port.port_id) != port
        self.ports[port.port_id] = port
        if changed and self.verbose:
            unenforced = port.security_rules and not self.dataplane.enforces_rules
            log.info(
                "%s: port %s set on network %s (%s %s%s)",
                self.host, port.port_id, port.network_id, port.mac, port.ip,
                f", {len(port.security_rules)} security rules NOT enforced" if unenforced else "",
            )  # fmt: skip

    async def _remove_port(self, port_id: str) -> None:
        port = self.ports.pop(port_id, None)
        self.dataplane.remove_port(port_id)
        if self.verbose:
            log.info("%s: port %s removed", self.host, port_id)
        if port is not None and not any(
            p.network_id == port.network_id for p in self.ports.values()
        ):
            await self._leave(port.network_id)

    async def _join(self, network_id: str, vni: int, table_follows: bool) -> None:
        """Subscribe to the network and get its table: it either follows the message that
        brought the port (``table_follows``; asked for only if it has not come after
        ``resync_after``) or is asked for now."""
        self.dataplane.ensure_network(network_id, vni)
        self.networks[network_id] = 0
        if self.verbose:
            log.info("%s: joined network %s (VNI %d)", self.host, network_id, vni)
        self._subs[network_id] = await self.transport.subscribe(
            network_subject(network_id), self._on_multicast
        )
        if table_follows:
            self._asked[network_id] = asyncio.get_running_loop().time()
        else:
            await self._ask(network_id)

    async def _leave(self, network_id: str) -> None:
        sub = self._subs.pop(network_id, None)
        if sub is not None:
            await sub.unsubscribe()
        self.dataplane.remove_network(network_id)
        self.networks.pop(network_id, None)
        if self.verbose:
            log.info("%s: left network %s", self.host, network_id)
        self._held_net.pop(network_id, None)
        self._pages.pop(network_id, None)
        self._asked.pop(network_id, None)

    # --- talking back -------------------------------------------------------------------

    async def _ask(self, key: str, force: bool = False) -> None:
        """Request a snapshot (the host's, or a network's), at most once per
        ``resync_after`` seconds per key unless ``force``d by a goal message."""
        now = asyncio.get_running_loop().time()
        if not force and now - self._asked.get(key, -1e9) < self.resync_after:
            return
        self._asked[key] = now
        body: dict[str, Any] = {"h": self.host}
        if key != HOST_KEY:
            body["n"] = key
        await self.transport.publish(SYNC_SUBJECT, messages.encode(body))

    async def resync(self) -> None:
        """Ask for the goal message (the revisions this host should hold)."""
        await self.transport.publish(SYNC_SUBJECT, messages.encode({"h": self.host, "g": 1}))

    async def _ack(self) -> None:
        if self.revision < 0:
            return
        body = {"h": self.host, "s": time.time_ns(), "r": self.revision, "n": self.networks}
        if self.dataplane.enforces_rules:  # absent: rules are not enforced (every agent today)
            body["e"] = 1
        await self.transport.publish(ACK_SUBJECT, messages.encode(body))
