"""The per-site thread pool that runs the work moving bytes (filling a volume, writing a
backup); a job that fails is logged. Each job is recorded in the resource's body before it is
submitted, so that ``recover`` can redo or fail it after a crash."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from cascade_sim.region import Region

log = logging.getLogger(__name__)

_EXECUTORS: weakref.WeakKeyDictionary[Region, ThreadPoolExecutor] = weakref.WeakKeyDictionary()
_EXECUTORS_LOCK = threading.Lock()


def _log_failure(future: Future[None]) -> None:
    error = future.exception()
    if error is not None:
        log.error("volume job failed", exc_info=error)


def submit(site: Region, job: Callable[..., None], *args: Any) -> None:
    """Run ``job(site, *args)`` on the site's pool."""
    with _EXECUTORS_LOCK:
        executor = _EXECUTORS.get(site)
        if executor is None:
            executor = ThreadPoolExecutor(2, thread_name_prefix=f"volume-{site.config.name}")
            _EXECUTORS[site] = executor
    executor.submit(job, site, *args).add_done_callback(_log_failure)
