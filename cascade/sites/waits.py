"""Waiting for a site to finish something: a server built, a volume made or deleted, a group
snapshot taken, an image imported.

One way for all of Cascade's waits, instead of openstacksdk's ``wait_for_*`` at a fixed
interval: the first look at once, the next after about ``POLL.first`` seconds, then each wait
``POLL.growth`` times the last, at most ``POLL.cap`` (Cascade's one backoff,
``cascade.retry``). A short wait is seen done about as soon as with a fixed 0.2 s look (a 1 s
build: 6 looks instead of 7); a long one costs the site a look every 2 s instead of five a
second (a minute-long build: about 40 requests, not 300), and is seen done within 2 s.

``look`` is called afresh at each attempt and answers the resource as the site shows it now
(a 404 once it is gone, for ``until_gone``). These run inside a ``SiteDriver.call``, whose
retry of transient failures wraps the whole wait, and whose ``SiteCallFailed`` names the site
and the call when a wait ends badly: ``WaitFailed`` (the resource went to a failure state, or
the time ran out) is not transient. ``until_status`` and ``until_gone`` are ``until`` for a
status and a 404; ``until`` takes any condition (the image copy's import: active, or failed
once outside Glance's busy states). A stopping worker looks no more: a wait ends with
``cascade.retry.Interrupted`` once its stop event is set, the one it is given or, inside a
``SiteDriver.call``, the driver's (``stopped_by``), so a step waiting on a long build does not
hold up the worker's shutdown; the step is left unrecorded for the resuming worker.
Imports ``cascade.retry``, ``cascade.errors`` and openstacksdk's exceptions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from openstack import exceptions as sdk_exceptions

from cascade.errors import CascadeError
from cascade.retry import Backoff, until_deadline

R = TypeVar("R")
POLL = Backoff(first=0.1, cap=2.0, growth=1.25)
_STOP: ContextVar[threading.Event | None] = ContextVar("cascade_wait_stop", default=None)


class WaitFailed(CascadeError):
    """What a wait was for will not happen: a failure state, or the time ran out."""

    status = 502


class _NotYet(Exception):
    """The look found it not done yet (control flow inside ``until``)."""


@contextmanager
def stopped_by(stop: threading.Event | None) -> Iterator[None]:
    """Waits started within (in this thread) end once ``stop`` is set."""
    token = _STOP.set(stop)
    try:
        yield
    finally:
        _STOP.reset(token)


def until(
    look: Callable[[], R],
    done: Callable[[R], bool],
    still: Callable[[R], str],
    timeout: float,
    stop: threading.Event | None = None,
) -> R:
    """``look()`` until ``done`` says yes (it may raise to end the wait); past ``timeout``,
    ``WaitFailed`` with ``still`` of the last answer. Once ``stop`` (by default the one of
    the ``stopped_by`` around it) is set, no more looks: ``cascade.retry.Interrupted``."""
    stop = stop if stop is not None else _STOP.get()
    last: list[R] = []

    def attempt() -> R:
        seen = look()
        if not done(seen):
            last[:] = [seen]
            raise _NotYet
        return seen

    try:
        return until_deadline(POLL, timeout, lambda e: isinstance(e, _NotYet), attempt, stop)
    except _NotYet:
        raise WaitFailed(f"{still(last[0])} after {timeout:g} s") from None


def until_status(
    look: Callable[[], Any],
    status: str,
    failures: Iterable[str] = ("error",),
    timeout: float = 120.0,
) -> Any:
    """``look()`` until its resource's status is ``status`` (in any case); ``WaitFailed`` if
    it shows one of ``failures`` or still another after ``timeout`` seconds."""
    wanted, failed = status.lower(), {f.lower() for f in failures}

    def done(resource: Any) -> bool:
        current = str(resource.status).lower()
        if current in failed:
            raise WaitFailed(f"{_name(resource)} went to {resource.status}{_fault(resource)}")
        return current == wanted

    def still(resource: Any) -> str:
        return f"{_name(resource)} is still {resource.status}, not {status}"

    return until(look, done, still, timeout)


def until_gone(look: Callable[[], Any], timeout: float = 120.0) -> None:
    """``look()`` until the site answers 404 (or ``look`` None): the resource is gone."""

    def found() -> Any:
        try:
            return look()
        except sdk_exceptions.NotFoundException:
            return None

    until(found, lambda seen: seen is None, lambda seen: f"{_name(seen)} is still there", timeout)


def _name(resource: Any) -> str:
    return f"{type(resource).__name__.lower()} {getattr(resource, 'id', '?')}"


def _fault(resource: Any) -> str:
    """Nova's fault message of a server in ERROR, if it shows one."""
    fault = getattr(resource, "fault", None)
    return f" ({fault['message']})" if isinstance(fault, dict) and fault.get("message") else ""
