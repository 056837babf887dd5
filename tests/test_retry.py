"""The one retry policy: transient failures retried with a growing, capped backoff until a
deadline (others raised at once); or any failure retried until a stop event, which also cuts
a wait short."""

from __future__ import annotations

import threading
import time

import pytest

from cascade.retry import Backoff, until_deadline, until_stopped


class Flaky:
    """Fails ``failures`` times with ``error``, then answers "done"; counts its calls."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


def transient(error: BaseException) -> bool:
    return isinstance(error, ConnectionError)


def test_transient_failures_are_retried_until_the_action_works() -> None:
    action = Flaky(3, ConnectionError("flaky"))
    assert until_deadline(Backoff(0.001, 0.002), 5.0, transient, action) == "done"
    assert action.calls == 4


def test_other_failures_are_raised_at_once() -> None:
    action = Flaky(3, ValueError("bad request"))
    with pytest.raises(ValueError, match="bad request"):
        until_deadline(Backoff(0.001, 0.002), 5.0, transient, action)
    assert action.calls == 1


def test_the_deadline_ends_the_retries_with_the_last_error() -> None:
    action = Flaky(10**6, ConnectionError("down"))
    started = time.monotonic()
    with pytest.raises(ConnectionError, match="down"):
        until_deadline(Backoff(0.01, 0.05), 0.3, transient, action)
    elapsed = time.monotonic() - started
    assert elapsed < 0.3 + 0.1  # no attempt starts after the deadline
    assert 3 < action.calls < 30  # retried, with growing waits


def test_until_stopped_backs_off_exponentially_up_to_the_cap() -> None:
    waits: list[float] = []
    action = Flaky(6, RuntimeError("unreachable"))
    result = until_stopped(
        Backoff(0.01, 0.04), threading.Event(), action, lambda _, delay: waits.append(delay)
    )
    assert result == "done"
    assert len(waits) == 6
    assert 0.01 <= waits[0] <= 0.02
    assert 0.02 <= waits[1] <= 0.03
    assert waits[2:] == [0.04] * 4  # capped


def test_a_stop_cuts_the_wait_short_and_ends_the_retries() -> None:
    stop = threading.Event()
    action = Flaky(10**6, RuntimeError("unreachable"))
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert until_stopped(Backoff(10.0, 10.0), stop, action, lambda *_: None) is None
    assert time.monotonic() - started < 2.0  # not the 10 s wait
    assert action.calls == 1
