"""The region's L2 population (Neutron's ML2 with l2pop, reusing Cascade's fabric): its
ports become fabric ports at the compute hosts they are bound to, and its remote ports
neighbour entries toward another cloud's tunnel endpoint.

``RegionFabric`` owns a private ``cascade.db.Database`` (``DATA_DIR/fabric.db``, the goal
state's tables alone: ``cascade.fabric.goal.scratch_database``), a ``GoalStore``, a
``FabricController`` and one ``Agent`` per compute host with its dataplane
(``fabric_hosts``), all on one in-process ``MemoryTransport``, started and stopped with the
application. The fabric database is derived state: rebuilt from the Neutron
state on every start.

What a port should be is ``fabric_ports``'s: a local port at the host it is bound to, a
remote port (``binding:profile`` ``tunnel_ip``) at another cloud's VTEP, or nothing, either
kind with its allowed address pairs (changed in place: one network delta, and for a local
port its host's delta, whose guest takes or frees the addresses). A
vxlan network becomes a fabric network (its id, VNI = ``provider:segmentation_id``, the CIDR
of its first IPv4 subnet) with its first port in the fabric, and goes with the network.

The store calls ``written`` after every save and drop (a thin hook); each change compares
what a port should be with what the goal store holds and adds, updates or removes it,
synchronously under ``site.state.lock``. A rule or a group membership change marks stale
every local port whose rules it may change, and those are updated together ``REFRESH_DELAY``
later (with a remote group expanded to its members' addresses, each new server of a group
changes every member's rules: updated one by one, a burst of N servers would cost N²
updates). The resulting ``GoalChange``s are published in the order they were made by one
task on the server's event loop (so per network too). A change the goal store refuses (a MAC
or IP another port of the network holds) is logged and leaves the Neutron call as it was.
``view`` is what ``/sim/v1/dataplane`` shows.

May import ``cascade.fabric``, ``cascade.db``, ``cascade.errors``,
the region and, of this package, ``fabric_ports`` and ``fabric_hosts`` (all three sit below
``store``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from cascade.db import Database
from cascade.errors import CascadeError, Unavailable, present
from cascade.fabric.agent import Agent
from cascade.fabric.controller import FabricController, stop_controller
from cascade.fabric.goal import GoalChange, GoalStore, PortSpec, scratch_database
from cascade.fabric.transports.memory import MemoryTransport
from cascade_sim.network.fabric_hosts import (
    HostPlane,
    check_config,
    close_plane,
    host_view,
    open_plane,
    port_views,
)
from cascade_sim.network.fabric_ports import (
    Json,
    Members,
    Membership,
    Segment,
    Wanted,
    same,
    same_routing,
    segment,
    wanted,
)
from cascade_sim.region import Region

log = logging.getLogger(__name__)

REFRESH_DELAY = 0.2  # seconds from a rule or membership change to its ports' updates

P = ParamSpec("P")
R = TypeVar("R")

_running: weakref.WeakKeyDictionary[Region, RegionFabric] = weakref.WeakKeyDictionary()


class RegionFabric:
    def __init__(self, site: Region) -> None:
        self.site = site
        self.agents: dict[str, Agent] = {}  # by host name
        self.planes: dict[str, HostPlane] = {}  # by host name
        self._hosts = {host.name for host in site.hosts}
        self._db: Database | None = None
        self._goal: GoalStore | None = None
        self._controller: FabricController | None = None
        self._members: Members = {}  # every Neutron port's
        self._local: set[str] = set()  # the goal's ports held at a host here
        self._stored: set[str] = set()  # every port in the goal (local and remote)
        self._stale: set[str] = set()  # local ports whose rules a change may have changed
        self._wake = asyncio.Event()  # set when there are stale ports
        self._rules_version = 0  # counts security group rule changes
        self._networks: set[str] = set()  # the fabric networks made
        self._segments: dict[str, Segment | None] = {}  # by network id, read once
        self._outbox: asyncio.Queue[GoalChange] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def goal(self) -> GoalStore:
        return present(self._goal, "the fabric's goal store (started)")

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Rebuild the goal from the Neutron state, then start the controller and one agent
        per host; whatever started is stopped again if a step fails."""
        await asyncio.to_thread(check_config, self.site.config)  # netlink: off the loop
        self._loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(self._open)
            transport = MemoryTransport()
            self._controller = FabricController(self.goal, transport, nudge_after=1.0)
            await self._controller.start()
            self._tasks.append(self._loop.create_task(self._publish_loop(self._controller)))
            self._tasks.append(self._loop.create_task(self._refresh_loop()))
            await asyncio.to_thread(self._load)
            for index, host in enumerate(self.site.hosts, 1):
                plane = await asyncio.to_thread(open_plane, self.site, index, host)
                self.planes[host.name] = plane
                self.agents[host.name] = agent = Agent(host.name, transport, plane.dataplane)
                await agent.start()
        except BaseException:
            await self.stop()
            raise

    def _open(self) -> None:
        # derived state: rebuilt from Neutron's by _load
        self._db = scratch_database(self.site.config.data_dir / "fabric.db")
        self._goal = GoalStore(self._db)

    def _load(self) -> None:
        """Register the hosts and every port the Neutron state holds, then take changes."""
        with self.site.state.lock:
            for host in self.site.hosts:
                self.goal.register_host(host.name, host.tunnel_ip)
            ports = self.site.state.list("port")
            self._members = {port["id"]: Membership.of(port) for port in ports}
            rules = self.site.state.list("security_group_rule")
            for port in ports:
                self._sync(port["id"], port, rules)
            _running[self.site] = self

    async def stop(self) -> None:
        """Stop taking changes, then stop the agents (removing the namespaces they created
        and the underlay pairs), the publisher and the controller."""
        await asyncio.to_thread(self._take_no_more)
        for agent in self.agents.values():
            await agent.stop()
        self.agents.clear()
        for plane in self.planes.values():
            await asyncio.to_thread(close_plane, self.site, plane)
        self.planes.clear()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._controller is not None:
            await stop_controller(self._controller)
        if self._db is not None:
            self._db.dispose()

    def _take_no_more(self) -> None:
        with self.site.state.lock:  # after any change in progress
            _running.pop(self.site, None)

    async def _publish_loop(self, controller: FabricController) -> None:
        while True:
            change = await self._outbox.get()
            try:
                await controller.publish(change)
            except CascadeError as error:
                log.warning("fabric: publishing a change failed: %s", error)

    def _publish(self, change: GoalChange | None) -> None:
        if change is not None:
            present(self._loop, "the fabric's loop").call_soon_threadsafe(
                self._outbox.put_nowait, change
            )

    # -- changes ---------------------------------------------------------------------------

    def port_changed(self, port_id: str, port: Json | None) -> None:
        old = self._members.pop(port_id, None)
        new = Membership.of(port) if port is not None else None
        if new is not None:
            self._members[port_id] = new
        self._sync(port_id, port)
        if old != new:
            groups = (old.groups if old else frozenset()) | (new.groups if new else frozenset())
            self.groups_changed(groups, referenced=True)

    def groups_changed(self, groups: frozenset[str], referenced: bool = False) -> None:
        """Mark stale the local ports whose rules a change to ``groups`` changes: the
        groups' own ports (their rules changed) or, ``referenced``, the ports whose rules
        name the groups as remote groups (the groups' members changed)."""
        if not referenced:
            self._rules_version += 1
        if not self._local:
            return
        holders = set(groups)
        if referenced:
            rules = self.site.state.list("security_group_rule")
            holders = {r["security_group_id"] for r in rules if r["remote_group_id"] in groups}
        stale = {port_id for port_id in self._local if self._members[port_id].groups & holders}
        if stale:
            self._stale |= stale
            present(self._loop, "the fabric's loop").call_soon_threadsafe(self._wake.set)

    async def _refresh_loop(self) -> None:
        """Bring stale ports' rules up to date, REFRESH_DELAY after the first change: a
        burst of changes (servers joining a group, each changing every member's rules)
        costs each port one update, not one per change."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(REFRESH_DELAY)
            self._wake.clear()
            await asyncio.to_thread(self._refresh)

    def _refresh(self) -> None:
        """Update the stale ports, taking the lock for one port at a time so that the API's
        changes go on meanwhile (the rules are read again when one changed)."""
        with self.site.state.lock:
            batch = sorted(self._stale)
        rules, version = [], -1
        for port_id in batch:
            with self.site.state.lock:
                if _running.get(self.site) is not self:
                    return  # stopping
                if port_id not in self._stale:
                    continue
                self._stale.discard(port_id)
                if version != self._rules_version:
                    rules = self.site.state.list("security_group_rule")
                    version = self._rules_version
                if port_id in self._local:
                    self._sync(port_id, self.site.state.get("port", port_id), rules)

    def network_dropped(self, network_id: str) -> None:
        if network_id in self._networks:
            self._networks.discard(network_id)
            self._attempt(f"network {network_id}", self.goal.delete_network, network_id)

    def _attempt(
        self, what: str, action: Callable[P, R], *args: P.args, **kwargs: P.kwargs
    ) -> R | None:
        """A goal-store action; a refusal is logged and the Neutron call succeeds anyway."""
        try:
            return action(*args, **kwargs)
        except CascadeError as error:
            log.warning("fabric: %s not programmed: %s", what, error)
            return None

    def _sync(self, port_id: str, port: Json | None, rules: list[Json] | None = None) -> None:
        """Make the goal store hold what ``port`` should be (nothing when None)."""
        want = self._wanted(port, rules) if port is not None else None
        have = self.goal.port(port_id) if port_id in self._stored else None
        if have is not None and want is not None and same(have, want.spec, rules=False):
            spec = want.spec
            if have["allowed_ips"] != list(spec.allowed_ips):  # in place: the port stays
                self._publish(self.goal.set_allowed_ips(port_id, spec.allowed_ips))
            if isinstance(spec, PortSpec) and not same(have, spec):
                rules_of = [dict(rule) for rule in spec.security_rules]
                self._publish(self.goal.update_port(port_id, rules_of, spec.port_security))
            if isinstance(spec, PortSpec) and not same_routing(have, spec):
                self._publish(self.goal.set_routing(port_id, spec.gateway, spec.routes))
            return
        if have is not None:
            self._publish(self.goal.remove_port(port_id))
            self._local.discard(port_id)
            self._stored.discard(port_id)
        if want is not None:
            self._add(want)

    def _wanted(self, port: Json, rules: list[Json] | None) -> Wanted | None:
        network_id = port["network_id"]
        if network_id not in self._segments:
            self._segments[network_id] = segment(self.site, network_id)
        found = self._segments[network_id]
        return wanted(self.site, port, found, self._hosts, self._members, rules)

    def router_changed(self, router_id: str) -> None:
        """A router was written: its interfaces here carry its routes."""
        for port in self.site.state.list("port"):
            if port["device_id"] == router_id and port["id"] in self._local:
                self._sync(port["id"], port)

    def networks_changed(self) -> None:
        """A network or subnet was written: read segments again."""
        self._segments.clear()

    def _add(self, want: Wanted) -> None:
        spec, goal = want.spec, self.goal
        if spec.network_id not in self._networks:
            what, found = f"network {spec.network_id}", want.segment
            self._attempt(what, goal.create_network, spec.network_id, found.vni, found.cidr)
            self._networks.add(spec.network_id)
        if isinstance(spec, PortSpec):
            change = self._attempt(f"port {spec.id}", goal.add_port, spec)
            if change is not None:
                self._local.add(spec.id)
        else:
            change = self._attempt(f"port {spec.id}", goal.add_remote_port, spec)
        if change is not None:
            self._stored.add(spec.id)
        self._publish(change)

    # -- what the region shows -------------------------------------------------------------

    async def view(self) -> Json:
        """The dataplane kind; how many ports' rule updates are pending (``REFRESH_DELAY``);
        per host its VTEP, namespace, convergence and what its dataplane holds; per local
        port its host, VM namespace and, as the goal holds them, its port security and
        rules."""
        ports = [view for plane in self.planes.values() for view in port_views(plane)]
        pending, stored, tracked = await asyncio.to_thread(
            self._goal_view, [p["id"] for p in ports]
        )
        for port, goal in zip(ports, stored, strict=True):
            port["port_security"] = (goal or {}).get("port_security")
            port["security_rules"] = (goal or {}).get("security_rules")
        hosts = [host_view(plane, tracked.get(name, {})) for name, plane in self.planes.items()]
        return {
            "dataplane": self.site.config.dataplane,
            "underlay": self.site.config.underlay,
            "rules_pending": pending,
            "hosts": hosts,
            "ports": ports,
        }

    def _goal_view(self, port_ids: list[str]) -> tuple[int, list[Json | None], dict[str, Json]]:
        """Pending rule updates, the goal's ports and each host's tracking, read together
        (no change between them)."""
        with self.site.state.lock:
            pending = len(self._stale)
            stored = [self.goal.port(port_id) for port_id in port_ids]
            tracked = {h["name"]: h for h in self.goal.tracking.hosts()}
        return pending, stored, tracked


# -- the hooks the store calls, and what the API reads -------------------------------------


def written(site: Region, kind: str, body: Json, kept: bool) -> None:
    """The store saved (``kept``) or dropped a body: tell the running fabric, if any."""
    fabric = _running.get(site)
    if fabric is None:
        return
    if kind == "port":
        fabric.port_changed(body["id"], body if kept else None)
    elif kind == "security_group_rule":
        fabric.groups_changed(frozenset([body["security_group_id"]]))
    elif kind == "router":
        fabric.router_changed(body["id"])
    elif kind in ("network", "subnet"):
        fabric.networks_changed()
        if kind == "network" and not kept:
            fabric.network_dropped(body["id"])


def running(site: Region) -> RegionFabric:
    fabric = _running.get(site)
    if fabric is None:
        raise Unavailable("the region's fabric is not running")
    return fabric
