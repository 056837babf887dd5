"""Cascade's client of a site's block-data service, through ``SiteDriver`` against a real site-sim
served over HTTP: a snapshot's blocks and the blocks changed since an older one, blocks read (one at
a time and in a run) and written into another volume, digests compared at the site, and errors
surfacing as ``SiteCallFailed`` with their HTTP status."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openstack.connection import Connection

from cascade.protection.site_blocks import (
    BlockList,
    read_blocks,
    snapshot_blocks,
    snapshot_digests,
    volume_digests,
    write_block,
)
from cascade.sites.driver import SiteAccess, SiteCallFailed, SiteDriver
from tests.sim.conftest import SITE_ADMIN_PASSWORD
from tests.site_server import ThreadedSite, threaded_site

BLOCK = 4 << 20
GIB = 1 << 30


@pytest.fixture
def site(tmp_path: Path) -> Iterator[ThreadedSite]:
    with threaded_site(tmp_path / "site", "site-blocks") as started:
        yield started


def driver(site: ThreadedSite, deadline: float = 30.0) -> SiteDriver:
    access = SiteAccess(
        site.name, site.region_name, site.auth_url, "admin", SITE_ADMIN_PASSWORD, "admin"
    )
    return SiteDriver(access, deadline=deadline)


def new_volume(c: Connection) -> str:
    volume = c.block_storage.create_volume(size=1)
    return str(c.block_storage.wait_for_status(volume, "available", wait=30).id)


def new_snapshot(c: Connection, volume_id: str) -> str:
    snapshot = c.block_storage.create_snapshot(volume_id=volume_id)
    return str(c.block_storage.wait_for_status(snapshot, "available", wait=30).id)


def sim_call(c: Connection, site: ThreadedSite, method: str, path: str, **kwargs: Any) -> Any:
    """The emulator's own ``/sim/v1`` API (writes into a volume, faults), as the site admin."""
    return c.session.request(f"{site.url}/sim/v1{path}", method, raise_exc=True, **kwargs)


def write_at(c: Connection, site: ThreadedSite, volume_id: str, index: int, data: bytes) -> None:
    sim_call(c, site, "PUT", f"/volumes/{volume_id}/data?offset={index * BLOCK}", data=data)


def test_blocks_listed_read_written_and_verified(site: ThreadedSite) -> None:
    at = driver(site)
    source = at.call("create volume", new_volume)
    data = {index: os.urandom(BLOCK) for index in (2, 40, 41)}
    at.call("write", lambda c: write_at(c, site, source, 2, data[2]))
    first = at.call("snapshot", lambda c: new_snapshot(c, source))
    at.call("write", lambda c: write_at(c, site, source, 40, data[40] + data[41]))
    second = at.call("snapshot", lambda c: new_snapshot(c, source))

    listed = at.call("list blocks", lambda c: snapshot_blocks(c, second))
    assert listed == BlockList(BLOCK, GIB, [2, 40, 41])
    changed = at.call("list changed blocks", lambda c: snapshot_blocks(c, second, since=first))
    assert changed == BlockList(BLOCK, GIB, [40, 41])

    target = at.call("create volume", new_volume)
    assert at.call("read a run", lambda c: read_blocks(c, second, 40, [BLOCK, BLOCK])) == [
        data[40],
        data[41],
    ]
    for index in listed.blocks:
        [block] = at.call("read block", lambda c, i=index: read_blocks(c, second, i, [BLOCK]))
        assert block == data[index]
        at.call("write block", lambda c, i=index, b=block: write_block(c, target, i, b))
    restored = at.call("digests", lambda c: volume_digests(c, target))
    assert set(restored) == {2, 40, 41}
    assert restored == at.call("digests", lambda c: snapshot_digests(c, second))
    assert at.call("digests", lambda c: snapshot_digests(c, first)).keys() == {2}


def test_errors_surface_as_site_call_failed_with_the_status(site: ThreadedSite) -> None:
    at = driver(site, deadline=2.0)
    volume = at.call("create volume", new_volume)
    at.call("write", lambda c: write_at(c, site, volume, 0, b"x"))
    snap = at.call("snapshot", lambda c: new_snapshot(c, volume))

    with pytest.raises(SiteCallFailed) as missing:
        at.call("read block", lambda c: read_blocks(c, "no-such-snapshot", 0, [BLOCK]))
    assert missing.value.http_status == 404
    assert "no-such-snapshot" in missing.value.reason
    with pytest.raises(SiteCallFailed) as short:
        at.call("write block", lambda c: write_block(c, volume, 0, b"short"))
    assert short.value.http_status == 400

    at.call(
        "fault",
        lambda c: sim_call(c, site, "PUT", "/faults", json={"block_read_failures_after": 0}),
    )
    try:
        with pytest.raises(SiteCallFailed) as failing:  # retried as transient until the deadline
            at.call("read block", lambda c: read_blocks(c, snap, 0, [BLOCK]))
        assert failing.value.http_status == 500
        assert "injected failure" in failing.value.reason
    finally:
        at.call("clear faults", lambda c: sim_call(c, site, "DELETE", "/faults"))
    assert at.call("read block", lambda c: read_blocks(c, snap, 0, [BLOCK]))[0][:1] == b"x"
