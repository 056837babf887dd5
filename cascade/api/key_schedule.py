"""Scheduled key rotation at the master (``identity_rotate_every``), run by each ``cascade up``
process: a rotation is due ``identity_rotate_every`` seconds after the current primary key was
promoted (its file's mtime), so restarts and several processes on the master's machine do not
rotate more often (they also exclude each other: ``KeyRotation`` holds a lock). A rotation a
site blocks is logged, naming the site, and retried."""

from __future__ import annotations

import asyncio
import logging
import time

from cascade.errors import Conflict
from cascade.services import Services

log = logging.getLogger("cascade.identity.rotation")
WAIT_FOR_SITES_S = 60.0
RETRY_S = 60.0


async def rotate_on_schedule(services: Services) -> None:
    every = services.settings.identity_rotate_every
    while True:
        await asyncio.sleep(_until_due(services, every))
        try:
            report = await asyncio.to_thread(
                services.key_rotation().rotate, min(WAIT_FOR_SITES_S, every)
            )
        except Conflict as error:  # another process rotating, or a key still too young
            log.info("scheduled key rotation skipped: %s", error.message)
            await asyncio.sleep(min(RETRY_S, every))
            continue
        if report.promoted:
            log.info("scheduled key rotation: promoted key %d", report.primary)
            continue
        missing = ", ".join(site.name for site in report.missing)
        log.warning("scheduled key rotation blocked: %s do not hold the new keys", missing)
        await asyncio.sleep(min(RETRY_S, every))


def _until_due(services: Services, every: int) -> float:
    keys = services.keys
    promoted = keys.primary_since(max(keys.read_all())) or time.time()
    return max(0.0, promoted + every - time.time())
