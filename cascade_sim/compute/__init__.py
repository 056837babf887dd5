"""Nova v2.1 at ``/compute``: version documents, flavors, keypairs, availability zones and
hypervisors (the site's simulated hosts), servers with their lifecycle, actions (reboot, stop,
start, quiesce, unquiesce) and volume attachments.

Transitions that take time (BUILD -> ACTIVE, REBOOT -> ACTIVE ...) are stored as a pending
change with a due time and applied when the server is next read (``records``), so a restarted
site-sim carries on where it stopped. A quiesced server has the internal flag ``_frozen``: the
volume service refuses writes to its volumes until it is unquiesced. May import the other
simulated services (network, volume, image) and the sim framework.
"""

from __future__ import annotations

from fastapi import APIRouter

from cascade_sim.compute import (
    actions,
    attachments,
    flavors,
    hosts,
    keypairs,
    servers,
    versions,
)


def routers() -> list[APIRouter]:
    modules = (versions, flavors, keypairs, hosts, servers, actions, attachments)
    return [module.router for module in modules]
