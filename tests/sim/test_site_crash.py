"""A site-sim killed with SIGKILL in the middle of a backup comes back consistent: the backup
is marked error, the volume's bytes are untouched, and a new backup restores bit for bit.
A site that refuses connections for a while comes back with its state, and the driver's
retries carry a call through the outage."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cascade.cli.bench.site import SiteClient
from cascade.cli.embedded import EmbeddedSite
from cascade.sites.driver import SiteDriver

PASSWORD = "crash-test-site-pw"
MIB = 1 << 20


def client_for(site: EmbeddedSite) -> SiteClient:
    return SiteClient(site.port, PASSWORD)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SiteStarter]:
    starter = SiteStarter(tmp_path)
    yield starter
    starter.stop_all()


class SiteStarter:
    """Starts site-sim processes in a test's directory and stops every one of them after."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[EmbeddedSite] = []

    def start_site(self, name: str) -> EmbeddedSite:
        site = EmbeddedSite(
            name,
            self.root / name,
            PASSWORD,
            args=["--build-seconds", "0"],
            env={"CASCADE_PASSWORD_HASH_ROUNDS": "4"},
        )
        self.started.append(site)
        site.start()
        return site

    def stop_all(self) -> None:
        for site in self.started:
            site.stop()


def test_sigkill_mid_backup_leaves_everything_consistent(sim: SiteStarter) -> None:
    site = sim.start_site("site-a")
    client = client_for(site)
    volume = client.call("POST", "/volume/v3/volumes", {"volume": {"size": 1}}, 202)["volume"]
    client.wait(f"/volume/v3/volumes/{volume['id']}", "volume", "status", "available")
    for offset in range(0, 768 * MIB, 16 * MIB):
        reply = client.http.request(
            "PUT",
            f"/sim/v1/volumes/{volume['id']}/data?offset={offset}",
            {"X-Auth-Token": client.token},
            os.urandom(16 * MIB),
        )
        assert reply.status < 300, reply.body
    before = client.call("GET", f"/sim/v1/volumes/{volume['id']}/checksum")
    backup = client.call(
        "POST", "/volume/v3/backups", {"backup": {"volume_id": volume["id"]}}, 202
    )["backup"]
    while True:  # kill once the backup is really under way
        state = client.call("GET", f"/volume/v3/backups/{backup['id']}")["backup"]
        if state["status"] != "creating" or state.get("progress", "0%") != "0%":
            break
        time.sleep(0.01)
    site.kill()
    site.start()
    client = client_for(site)
    after = client.call("GET", f"/volume/v3/backups/{backup['id']}")["backup"]
    assert state["status"] == "creating", "the backup finished before the kill"
    assert after["status"] == "error", after
    assert after["fail_reason"]
    shown = client.call("GET", f"/volume/v3/volumes/{volume['id']}")["volume"]
    assert shown["status"] == "available"
    assert client.call("GET", f"/sim/v1/volumes/{volume['id']}/checksum") == before
    retry = client.call("POST", "/volume/v3/backups", {"backup": {"volume_id": volume["id"]}}, 202)[
        "backup"
    ]
    client.wait(f"/volume/v3/backups/{retry['id']}", "backup", "status", "available")
    restored = client.call(
        "POST", f"/volume/v3/backups/{retry['id']}/restore", {"restore": {}}, 202
    )["restore"]
    client.wait(f"/volume/v3/volumes/{restored['volume_id']}", "volume", "status", "available")
    assert client.call("GET", f"/sim/v1/volumes/{restored['volume_id']}/checksum") == before


def test_outage_refuses_connections_then_recovers_and_driver_retries(sim: SiteStarter) -> None:
    site = sim.start_site("site-b")
    client = client_for(site)
    keypair = client.call(
        "POST", "/compute/v2.1/os-keypairs", {"keypair": {"name": "before-outage"}}
    )
    assert keypair["keypair"]["name"] == "before-outage"
    client.call("POST", "/sim/v1/outage", {"seconds": 1.5}, 202)
    time.sleep(0.3)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{site.url}/compute/v2.1/", timeout=2)
    driver = SiteDriver(site.access())
    started = time.monotonic()
    names = driver.call("list keypairs", lambda c: [k.name for k in c.compute.keypairs()])
    assert names == ["before-outage"]
    assert time.monotonic() - started > 0.5  # it waited through the outage
