"""The convergence pass: once per period for the whole cluster whatever the number of
workers, and it repairs drift (a server deleted or stopped behind Cascade's back)."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from itertools import pairwise

from fastapi.testclient import TestClient
from sqlalchemy import select

from cascade.cli.embedded import EmbeddedSite
from cascade.db.models import ConvergencePass
from cascade.services import Services
from cascade.sites.driver import SiteDriver
from tests.engine.conftest import WorkerFactory, create_server, wait_operation

PERIOD = "2"


def _passes(services: Services) -> list[ConvergencePass]:
    with services.db.session() as session:
        return list(
            session.scalars(select(ConvergencePass).order_by(ConvergencePass.scheduled_for))
        )


def _wait_for(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_one_pass_per_period_across_two_workers(
    services: Services, two_sites: list[EmbeddedSite], start_worker: WorkerFactory
) -> None:
    for executor_id in ("w1", "w2"):
        start_worker(executor_id, CASCADE_CONVERGENCE_INTERVAL=PERIOD)
    _wait_for(lambda: len([p for p in _passes(services) if p.finished_at]) >= 5, timeout=30)
    passes = [p for p in _passes(services) if p.finished_at]
    ticks = [p.scheduled_for for p in passes]
    assert len(set(ticks)) == len(ticks), "a tick ran twice"
    gaps = Counter(later - earlier for earlier, later in pairwise(ticks))
    assert set(gaps) == {timedelta(seconds=int(PERIOD))}, gaps
    assert all(p.status == "succeeded" for p in passes)


def test_pass_repairs_servers_changed_behind_cascades_back(
    client: TestClient,
    admin_token: str,
    services: Services,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    start_worker("w1", CASCADE_CONVERGENCE_INTERVAL=PERIOD)
    headers = {"X-Auth-Token": admin_token}
    gone = create_server(client, admin_token, "gone", site="site-a")
    stopped = create_server(client, admin_token, "stopped", site="site-a")
    for accepted in (gone, stopped):
        assert wait_operation(client, admin_token, accepted["operation"]["id"])["status"] == (
            "succeeded"
        )

    def shown(accepted: dict[str, object]) -> dict[str, str]:
        server = accepted["server"]
        return client.get(f"/v1/servers/{server['id']}", headers=headers).json()["server"]  # type: ignore[index]

    site = SiteDriver(two_sites[0].access())
    old_id = shown(gone)["site_server_id"]
    site.call("delete behind", lambda c: c.compute.delete_server(old_id))
    site.call("stop behind", lambda c: c.compute.stop_server(shown(stopped)["site_server_id"]))

    _wait_for(lambda: shown(stopped)["status"] == "SHUTOFF", timeout=30)
    _wait_for(
        lambda: shown(gone)["status"] == "ACTIVE" and shown(gone)["site_server_id"] != old_id,
        timeout=30,
    )
    repairs = [
        repair
        for listed in client.get("/v1/convergence", headers=headers).json()["passes"]
        for repair in listed["repairs"]
    ]
    gone_id, stopped_id = gone["server"]["id"], stopped["server"]["id"]  # type: ignore[index]
    assert any(r["resource"]["id"] == gone_id and "recreating" in r["action"] for r in repairs)
    assert any(r["resource"]["id"] == stopped_id and "SHUTOFF" in r["drift"] for r in repairs)
    at_site = site.call("list", lambda c: list(c.compute.servers(details=True)))
    assert Counter(s.metadata.get("cascade_id") for s in at_site) == {gone_id: 1, stopped_id: 1}
