"""Servers through the engine, end to end: API (202 + operation), a real worker process, a
real site-sim, and the server at the site."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cascade.cli.embedded import EmbeddedSite
from cascade.sites.driver import SiteDriver
from tests.engine.conftest import WorkerFactory, create_server, wait_operation


def test_server_lifecycle_at_a_site(
    client: TestClient,
    admin_token: str,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    start_worker("w1")
    headers = {"X-Auth-Token": admin_token}
    accepted = create_server(client, admin_token, "web-1", site="site-b")
    server_id = accepted["server"]["id"]
    assert accepted["server"]["status"] == "BUILD"
    done = wait_operation(client, admin_token, accepted["operation"]["id"])
    assert done["status"] == "succeeded", done
    assert done["sites"] == {"site-b": "succeeded"}
    server = client.get(f"/v1/servers/{server_id}", headers=headers).json()["server"]
    assert server["status"] == "ACTIVE"
    at_site = SiteDriver(two_sites[1].access()).call(
        "show", lambda c: c.compute.get_server(server["site_server_id"])
    )
    assert at_site.metadata["cascade_id"] == server_id

    for action, status in (("stop", "SHUTOFF"), ("start", "ACTIVE"), ("reboot", "ACTIVE")):
        response = client.post(f"/v1/servers/{server_id}/{action}", headers=headers)
        assert response.status_code == 202, response.text
        assert (
            wait_operation(client, admin_token, response.json()["operation"]["id"])["status"]
            == "succeeded"
        )
        shown = client.get(f"/v1/servers/{server_id}", headers=headers).json()["server"]
        assert shown["status"] == status
        assert shown["error"] is None
        # What Cascade records is what the site has: asked of the site itself.
        at_site = SiteDriver(two_sites[1].access()).call(
            "show", lambda c: c.compute.get_server(server["site_server_id"])
        )
        assert at_site.status == status, action

    deleted = client.delete(f"/v1/servers/{server_id}", headers=headers)
    assert deleted.status_code == 202
    assert (
        wait_operation(client, admin_token, deleted.json()["operation"]["id"])["status"]
        == "succeeded"
    )
    assert client.get(f"/v1/servers/{server_id}", headers=headers).status_code == 404
    gone = SiteDriver(two_sites[1].access()).call(
        "list", lambda c: [s for s in c.compute.servers() if s.name == "web-1"]
    )
    assert gone == []
