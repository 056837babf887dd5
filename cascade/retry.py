"""The one retry and backoff policy, on tenacity.

Owns how Cascade waits between attempts (``Backoff``: exponential from ``first`` seconds,
doubling or growing by its ``growth``, jittered by up to ``first``, never more than ``cap``)
and the two ways it keeps trying: ``until_deadline`` (retry what a predicate calls transient
while the next attempt would still start before a deadline, then raise the last error as it
is; given a stop event, a stop cuts the wait short and raises ``Interrupted`` instead of
trying again) and ``until_stopped`` (retry any failure until it succeeds or an event is set).
Its users: the site driver (transient site failures, to the call's deadline) and its waits
(``cascade.sites.waits``: a look at a build or a deletion until it is done), the identity
follower (an unreachable master, backing off up to a cap for as long as the replica runs)
and the worker supervisor (a worker that keeps dying is restarted after 1, 2, 4 ... 30 s).

Imports nothing from the package but ``cascade.errors``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_not_exception_type,
    stop_before_delay,
    wait_exponential_jitter,
)

from cascade.errors import Internal

T = TypeVar("T")
OnRetry = Callable[[BaseException, float], None]  # the failure, seconds until the next try


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: about ``first`` seconds, times ``growth`` at each
    attempt, at most ``cap``. Retries double; a look at something that ends on its own
    (``cascade.sites.waits``) grows slowly, so that it is seen done soon after it is."""

    first: float
    cap: float
    growth: float = 2.0

    def strategy(self) -> wait_exponential_jitter:
        """The delays as tenacity's wait strategy."""
        return wait_exponential_jitter(
            multiplier=self.first, max=self.cap, exp_base=self.growth, jitter=self.first
        )


class Interrupted(BaseException):  # like KeyboardInterrupt: not an error
    """The process is stopping: no more attempts. Not a failure of the call, so it is a
    BaseException that no ``except Exception`` turns into one; the caller (a worker's step)
    leaves the work unrecorded, for another process to resume."""


class _Stopped(Exception):  # control flow inside until_stopped, never raised out of it
    """The stop event was set before an attempt: no more attempts."""


def until_deadline(
    backoff: Backoff,
    deadline: float,
    transient: Callable[[BaseException], bool],
    action: Callable[[], T],
    stop: threading.Event | None = None,
    on_retry: OnRetry | None = None,
) -> T:
    """``action()``, retried with ``backoff`` while it fails transiently and the next attempt
    would start within ``deadline`` seconds of the first; any other failure, or the last one,
    is raised as it is (``on_retry``, if given, is told of each failure retried and the wait).
    Once ``stop`` is set, no attempt starts: ``Interrupted``."""

    def attempt() -> T:
        if stop is not None and stop.is_set():
            raise Interrupted
        return action()

    def sleep(seconds: float) -> None:
        if stop is not None:
            stop.wait(seconds)  # a stop cuts the wait short; the next attempt then ends it
        else:
            time.sleep(seconds)

    retrying = Retrying(
        wait=backoff.strategy(),
        stop=stop_before_delay(deadline),
        retry=retry_if_exception(lambda e: not isinstance(e, Interrupted) and transient(e)),
        sleep=sleep,
        before_sleep=None if on_retry is None else _telling(on_retry),
        reraise=True,
    )
    return retrying(attempt)


def _telling(on_retry: OnRetry) -> Callable[[RetryCallState], None]:
    """tenacity's ``before_sleep`` hook that tells ``on_retry`` the failure and the wait."""

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        if error is None or state.next_action is None:
            raise Internal("tenacity slept after an attempt that did not fail")
        on_retry(error, state.next_action.sleep)

    return before_sleep


def until_stopped(
    backoff: Backoff, stop: threading.Event, action: Callable[[], T], on_retry: OnRetry
) -> T | None:
    """``action()``, retried with ``backoff`` after any failure (``on_retry`` is told which,
    and how long the wait is) until it succeeds or ``stop`` is set; None once stopped. The
    backoff starts again from ``first`` at each call."""

    def attempt() -> T:
        if stop.is_set():
            raise _Stopped
        return action()

    def sleep(seconds: float) -> None:
        stop.wait(seconds)  # a stop cuts the wait short; the next attempt then ends it

    retrying = Retrying(
        wait=backoff.strategy(),
        retry=retry_if_not_exception_type(_Stopped),
        sleep=sleep,
        before_sleep=_telling(on_retry),
        reraise=True,
    )
    try:
        return retrying(attempt)
    except _Stopped:
        return None
