"""A VNF for protection's tests: servers made through Cascade at one site-sim, each with a
data volume attached at the site, and the site's own records of their freezes and thaws."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from cascade.cli.embedded import EmbeddedSite
from cascade.sites.driver import SiteDriver
from tests.engine.conftest import create_server, wait_operation


def make_vnf(
    client: TestClient, token: str, site: EmbeddedSite, size: int, **server: Any
) -> list[dict[str, Any]]:
    """``size`` ACTIVE servers at ``site`` (``server``: more of their spec), each with a
    1 GiB volume attached there."""
    headers = {"X-Auth-Token": token}
    accepted = [
        create_server(client, token, f"vnf-{n}", site=site.site_name, **server) for n in range(size)
    ]
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


def protect(
    client: TestClient, token: str, servers: list[dict[str, Any]], target: str, **extra: Any
) -> dict[str, Any]:
    """A plan protecting ``servers`` (in their order) for ``target``, once it is ACTIVE."""
    body = {"name": "vnf", "members": [{"server": s["id"]} for s in servers], **extra}
    response = client.post(
        "/v1/protection-plans",
        headers={"X-Auth-Token": token},
        json={**body, "target_site": target},
    )
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    assert wait_operation(client, token, accepted["operation"]["id"])["status"] == "succeeded"
    plan: dict[str, Any] = client.get(
        f"/v1/protection-plans/{accepted['plan']['id']}", headers={"X-Auth-Token": token}
    ).json()["plan"]
    return plan


def protected_vnf(
    client: TestClient, token: str, sites: list[EmbeddedSite], **extra: Any
) -> tuple[EmbeddedSite, list[dict[str, Any]], dict[str, Any]]:
    """Three servers with a data volume each at the first site, protected for the second:
    (the source site, the servers, the plan)."""
    source, target = sites
    servers = make_vnf(client, token, source, 3)
    return source, servers, protect(client, token, servers, target.site_name, **extra)


def take_checkpoint(client: TestClient, token: str, plan_id: str) -> dict[str, Any]:
    response = client.post(
        f"/v1/protection-plans/{plan_id}/checkpoints", headers={"X-Auth-Token": token}
    )
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


def show_checkpoint(client: TestClient, token: str, checkpoint_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/checkpoints/{checkpoint_id}", headers={"X-Auth-Token": token})
    assert response.status_code == 200, response.text
    checkpoint: dict[str, Any] = response.json()["checkpoint"]
    return checkpoint


def available_checkpoint(client: TestClient, token: str, plan_id: str) -> dict[str, Any]:
    """A new checkpoint of the plan, once its operation succeeded."""
    accepted = take_checkpoint(client, token, plan_id)
    operation = wait_operation(client, token, accepted["operation"]["id"])
    assert operation["status"] == "succeeded", operation
    return show_checkpoint(client, token, accepted["checkpoint"]["id"])


def replicated_type(site: EmbeddedSite, directory: Path) -> None:
    """The volume type ``replicated`` at the site: its volumes are mirrored (at each snapshot)
    to ``directory``, the replication target another site with the same type adopts from."""
    specs = {"replication_enabled": "<is> True", "cascade_sim:replica_dir": str(directory)}
    SiteDriver(site.access()).call(
        "create the replicated volume type",
        lambda c: c.block_storage.create_type(name="replicated", extra_specs=specs),
    )


def attach_new_volume(site: EmbeddedSite, server: dict[str, Any], **volume: Any) -> str:
    """A new 1 GiB volume (``volume``: more of its spec) attached to the server at the site;
    its id."""

    def attach(c: Any) -> str:
        made = c.block_storage.create_volume(size=1, name=f"more-{server['name']}", **volume)
        c.block_storage.wait_for_status(made, "available", wait=60, interval=0.2)
        c.compute.create_volume_attachment(server["site_server_id"], volume_id=made.id)
        c.block_storage.wait_for_status(made, "in-use", wait=60, interval=0.2)
        return str(made.id)

    return SiteDriver(site.access()).call("attach a new volume", attach)


def volume_data(
    site: EmbeddedSite, volume_id: str, offset: int, body: bytes | None = None
) -> bytes:
    """Write ``body`` at ``offset`` of the volume (through the site-sim's data API), or read
    the 256 bytes there if no body is given."""
    session = SiteDriver(site.access()).connection.session
    url = f"{site.url}/sim/v1/volumes/{volume_id}/data"
    if body is not None:
        session.put(url, params={"offset": offset}, data=body)
        return b""
    return bytes(session.get(url, params={"offset": offset, "length": 256}).content)
