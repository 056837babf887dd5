"""Cascade's waits for a site (``cascade.sites.waits``), given the answers a site gives in
turn: done as soon as a look shows it, a failure state or the time running out named, a
deletion seen through the site's 404, looks that grow apart instead of one every 0.2 s, and
a wait inside a driver's call that ends once the driver's stop is set (a stopping worker).
Through real site-sims they run in every server, volume, group-snapshot and image test."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
from openstack import exceptions as sdk_exceptions

from cascade.retry import Interrupted
from cascade.sites.driver import SiteAccess, SiteDriver
from cascade.sites.waits import WaitFailed, until_gone, until_status


@dataclass
class Server:
    id: str
    status: str
    fault: dict[str, Any] = field(default_factory=dict)


class Looks:
    """A look answering each of ``answers`` in turn (a server's status, or an error to
    raise), the last one again and again; ``count`` is how many looks were made."""

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.count = 0

    def __call__(self) -> Server:
        answer = self.answers[min(self.count, len(self.answers) - 1)]
        self.count += 1
        if isinstance(answer, Exception):
            raise answer
        return Server("s1", answer, {"message": "No valid host was found"})


def test_until_status_answers_the_resource_once_it_shows_the_status() -> None:
    look = Looks("BUILD", "BUILD", "active")
    assert until_status(look, "ACTIVE", timeout=30).status == "active"
    assert look.count == 3


def test_a_failure_state_ends_the_wait_with_the_site_s_fault() -> None:
    with pytest.raises(WaitFailed, match=r"server s1 went to ERROR \(No valid host was found\)"):
        until_status(Looks("BUILD", "ERROR"), "ACTIVE", timeout=30)


def test_a_wait_past_its_time_says_what_it_last_saw_and_looks_less_and_less_often() -> None:
    look = Looks("BUILD")
    with pytest.raises(WaitFailed, match="server s1 is still BUILD, not ACTIVE after 4 s"):
        until_status(look, "ACTIVE", timeout=4)
    # One look every 0.2 s would be 21 in 4 s; growing by 1.25 from 0.1 s, at most 12.
    assert 3 <= look.count <= 12


def test_until_gone_ends_at_the_site_s_404() -> None:
    look = Looks("DELETING", "DELETING", sdk_exceptions.NotFoundException("No Server found"))
    until_gone(look, timeout=30)
    assert look.count == 3


def test_until_gone_names_what_is_still_there() -> None:
    with pytest.raises(WaitFailed, match="server s1 is still there after 1 s"):
        until_gone(Looks("DELETING"), timeout=1)


def test_a_wait_inside_a_driver_s_call_ends_once_the_driver_is_stopped() -> None:
    stop = threading.Event()
    look = Looks("BUILD")
    access = SiteAccess("s", "RegionOne", "http://127.0.0.1:9/v3", "u", "p", "proj")
    driver = SiteDriver(access, stop=stop)  # no request is made: the looks are scripted

    def looking() -> Server:
        if look.count == 2:
            stop.set()  # the worker begins to stop while the server still builds
        return look()

    with pytest.raises(Interrupted):
        driver.call("wait for server s1", lambda _c: until_status(looking, "ACTIVE"))
    assert look.count == 3  # no look after the stop: not 120 s of them
    # The driver's stop reaches only waits inside its calls.
    assert until_status(Looks("BUILD", "ACTIVE"), "ACTIVE", timeout=30).status == "ACTIVE"
