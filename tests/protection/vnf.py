"""A VNF for protection's tests: servers made through Cascade at one site-sim, each with a
data volume attached at the site, and the site's own records of their freezes and thaws."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from cascade.cli.embedded import EmbeddedSite
from cascade.sites.driver import SiteDriver
from tests.engine.conftest import create_server, wait_operation


def make_vnf(client: TestClient, token: str, site: EmbeddedSite, size: int) -> list[dict[str, Any]]:
    """``size`` ACTIVE servers at ``site``, each with a 1 GiB volume attached there."""
    headers = {"X-Auth-Token": token}
    accepted = [create_server(client, token, f"vnf-{n}", site=site.site_name) for n in range(size)]
    for one in accepted:
        assert wait_operation(client, token, one["operation"]["id"])["status"] == "succeeded"
    servers = [
        client.get(f"/v1/servers/{one['server']['id']}", headers=headers).json()["server"]
        for one in accepted
    ]
    driver = SiteDriver(site.access())
    for server in servers:
        driver.call("attach a data volume", lambda c, s=server: _attach_volume(c, s))
    return servers


def _attach_volume(c: Any, server: dict[str, Any]) -> None:
    volume = c.block_storage.create_volume(size=1, name=f"data-{server['name']}")
    c.block_storage.wait_for_status(volume, "available", wait=60, interval=0.2)
    c.compute.create_volume_attachment(server["site_server_id"], volume_id=volume.id)
    c.block_storage.wait_for_status(volume, "in-use", wait=60, interval=0.2)


def sim_admin(site: EmbeddedSite, method: str, path: str, **body: Any) -> Any:
    """Call the site-sim's ``/sim/v1`` admin API as the site's admin."""
    session = SiteDriver(site.access()).connection.session
    response = session.request(f"{site.url}/sim/v1{path}", method, json=body or None)
    return response.json() if response.content else None


def freezes_and_thaws(site: EmbeddedSite, positions: dict[str, int]) -> list[tuple[str, int]]:
    """Every quiesce/unquiesce of the given servers (site id -> plan position) as the site
    recorded them, in time order: [("quiesce", 1), ...]."""
    events = [
        (event["at"], event["action"], positions[server["id"]])
        for server in sim_admin(site, "GET", "/quiesces")["servers"]
        if server["id"] in positions
        for event in server["events"]
    ]
    return [(action, position) for _at, action, position in sorted(events)]


def frozen_now(site: EmbeddedSite) -> list[str]:
    return [s["id"] for s in sim_admin(site, "GET", "/quiesces")["servers"] if s["frozen"]]
