"""One watcher of the identity change log per serving process: however many replicas long-poll
``/identity-replica/v1/changes``, the process looks at the log's head and at the key set
replicas should hold once per ``POLL_S``, and wakes every waiter that has news.

Polling the database (not only waking on this process's own commits) is what lets a change
committed by any API process of the master, or by ``cascade identity rotate-keys``, reach
every waiting replica.
"""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy import func, select

from cascade.db import Database
from cascade.db.models import IdentityChange
from cascade.identity.keys import KeyRepository
from cascade.identity.rotation import wanted_key_set

POLL_S = 0.1  # <= 0.1 s added to a change's trip to a waiting replica


class ChangeWatch:
    def __init__(self, db: Database, keys: KeyRepository, staged: KeyRepository) -> None:
        self._db = db
        self._keys_of = (keys, staged)
        self._news = asyncio.Condition()
        self._head = -1  # unknown until the first look
        self._keys = ""
        self._waiters = 0
        self._task: asyncio.Task[None] | None = None

    async def wait(self, after: int, keys: str | None, timeout: float) -> None:
        """Return when the log holds a change after ``after``, when replicas should hold a
        key set other than ``keys``, or after ``timeout`` seconds."""

        def news() -> bool:
            return self._head > after or (keys is not None and self._keys not in ("", keys))

        async with self._news:
            self._waiters += 1
            if self._task is None:
                self._head, self._keys = -1, ""
                self._task = asyncio.create_task(self._watch())
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._news.wait_for(news), timeout)
            finally:
                self._waiters -= 1

    async def _watch(self) -> None:
        try:
            while self._waiters:
                head, keys = await asyncio.to_thread(self._look)
                async with self._news:
                    self._head, self._keys = head, keys
                    self._news.notify_all()
                await asyncio.sleep(POLL_S)
        finally:
            self._task = None

    def _look(self) -> tuple[int, str]:
        with self._db.session() as session:
            head = session.scalar(select(func.max(IdentityChange.seq))) or 0
        return int(head), wanted_key_set(*self._keys_of)
