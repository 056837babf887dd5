"""Neutron v2.0 at ``/network``: networks with provider attributes, subnets and their IP
allocation, ports (fixed IPs, MACs, bindings, security groups), security groups and rules,
routers (external gateway, interfaces, extra routes), floating IPs and tags, the compute
hosts' L2 agents (read-only, ``agents``); and the port functions the compute service calls
to plug servers in.

Each resource kind is described once (``kinds``: its attributes, how a given value is checked,
its default, who may set or see it) and served by one CRUD router with Neutron's filters,
``fields``, sorting and ``limit``/``marker`` (``resources``, ``collection``, ``api``); what is
particular to a kind lives in its build, change and remove hooks, one module a kind
(``networks``, ``subnets``, ``ports``, ``security_groups``, ``l3`` for routers,
``floating_ips``). IPs (per subnet), MACs and segmentation ids are taken through
``site.state.allocate`` so they never collide (``addresses``, ``store``); every change runs
under ``site.state.lock``.

The compute hosts are programmed through Cascade's fabric (``fabric``, ``fabric_ports``,
``fabric_hosts``): a port bound to a host becomes a fabric port there, a remote port
(``binding:profile`` ``tunnel_ip``) neighbour entries toward another cloud's VTEP; the store
tells it every write.

Each module imports only those before it here: ``errors``, ``checks``, ``kinds``, ``fabric_ports``,
``fabric_hosts``, ``fabric``, ``store``, ``resources``, ``collection``, ``agents``, ``addresses``,
``security_groups``, ``networks``, ``subnets``, ``ports``, ``nova``, ``l3``, ``floating_ips``,
``versions``, ``api``; where a lower module must touch a higher kind's bodies (a network's removal
drops its ports) it names the kind as ``site.state`` does (``"port"``). Outside the package they may
import ``cascade.api.deps``, ``cascade.identity.tokens`` and the site-sim's ``common``, ``errors``,
``site`` and ``state``; the ``fabric*`` modules also ``cascade.fabric``, ``cascade.db`` and the
site-sim's ``underlay``. Other modules use only what is exported here.
"""

from __future__ import annotations

from cascade_sim.network.api import routers
from cascade_sim.network.fabric import RegionFabric, running
from cascade_sim.network.fabric_hosts import check_config
from cascade_sim.network.nova import (
    bind_port,
    create_port,
    network_name,
    ports_of,
    unbind_ports,
    usable_networks,
)

__all__ = [
    "RegionFabric",
    "bind_port",
    "check_config",
    "create_port",
    "network_name",
    "ports_of",
    "routers",
    "running",
    "unbind_ports",
    "usable_networks",
]
