"""The convergence pass: once per period for the whole cluster whatever the number of
workers, finished by another worker when the one running it is SIGKILLed, and it repairs
drift (a server deleted or stopped behind Cascade's back)."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, text

from cascade.cli.embedded import EmbeddedSite
from cascade.db.models import ConvergencePass
from cascade.engine import dbos_private
from cascade.services import Services
from cascade.sites.driver import SiteDriver
from tests.engine.conftest import WorkerFactory, create_server, wait_operation
from tests.protection.vnf import sim_admin

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


def _pass_executor(services: Services, pass_id: str) -> str | None:
    """The worker DBOS has the pass's workflow on now."""
    table = dbos_private.table(services.db, "workflow_status")
    with services.db.engine.connect() as connection:
        found = connection.execute(
            text(f"SELECT executor_id FROM {table} WHERE workflow_uuid = :id"),  # noqa: S608
            {"id": pass_id},
        ).scalar_one_or_none()
    return None if found is None else str(found)


def test_a_pass_whose_worker_is_killed_is_finished_by_another_and_ticks_go_on(
    services: Services, two_sites: list[EmbeddedSite], start_worker: WorkerFactory
) -> None:
    """No worker must stay up for the periodic passes: the worker running a pass (slowed by
    the site, 3 s per call) is SIGKILLed mid-pass; the other resumes that pass and finishes it,
    and the ticks after the kill run on the survivor."""
    workers = {w: start_worker(w, CASCADE_CONVERGENCE_INTERVAL=PERIOD) for w in ("w1", "w2")}
    sim_admin(two_sites[0], "PUT", "/faults", latency={"compute": 3.0})
    open_passes: list[ConvergencePass] = []

    def one_running() -> bool:
        open_passes[:] = [p for p in _passes(services) if p.finished_at is None]
        return bool(open_passes)

    _wait_for(one_running, timeout=60)
    victim = open_passes[0]
    holder = _pass_executor(services, victim.id)
    assert holder in workers, holder
    workers[holder].kill()
    killed_at = datetime.now(UTC)
    survivor = next(w for w in workers if w != holder)

    def finished(pass_id: str) -> bool:
        with services.db.session() as session:
            found = session.get(ConvergencePass, pass_id)
            return found is not None and found.finished_at is not None

    _wait_for(lambda: finished(victim.id), timeout=120)
    assert _pass_executor(services, victim.id) == survivor

    def later() -> list[ConvergencePass]:
        return [p for p in _passes(services) if p.finished_at and p.scheduled_for > killed_at]

    _wait_for(lambda: len(later()) >= 2, timeout=120)
    assert {_pass_executor(services, p.id) for p in later()} == {survivor}
    ticks = [p.scheduled_for for p in _passes(services)]
    assert len(set(ticks)) == len(ticks), "a tick ran twice"


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

    def shown(accepted: dict[str, Any]) -> dict[str, str]:
        server_id = accepted["server"]["id"]
        found: dict[str, str] = client.get(f"/v1/servers/{server_id}", headers=headers).json()
        return found["server"]  # type: ignore[return-value]

    site = SiteDriver(two_sites[0].access())
    old_id = shown(gone)["site_server_id"]
    site.call("delete behind", lambda c: c.compute.delete_server(old_id))
    site.call("stop behind", lambda c: c.compute.stop_server(shown(stopped)["site_server_id"]))

    _wait_for(lambda: shown(stopped)["status"] == "SHUTOFF", timeout=30)
    _wait_for(
        lambda: shown(gone)["status"] == "ACTIVE" and shown(gone)["site_server_id"] != old_id,
        timeout=30,
    )
    # every pass since the changes (one per PERIOD; by default the API shows the last 10 only)
    passes = client.get("/v1/convergence", params={"limit": 100}, headers=headers).json()
    repairs = [repair for listed in passes["passes"] for repair in listed["repairs"]]
    gone_id, stopped_id = gone["server"]["id"], stopped["server"]["id"]
    assert any(r["resource"]["id"] == gone_id and "recreating" in r["action"] for r in repairs)
    assert any(r["resource"]["id"] == stopped_id and "SHUTOFF" in r["drift"] for r in repairs)
    at_site = site.call("list", lambda c: list(c.compute.servers(details=True)))
    assert Counter(s.metadata.get("cascade_id") for s in at_site) == {gone_id: 1, stopped_id: 1}


def test_a_server_that_never_reached_its_site_is_error_and_left_alone(
    client: TestClient,
    admin_token: str,
    services: Services,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    start_worker("w1", CASCADE_CONVERGENCE_INTERVAL="1")
    headers = {"X-Auth-Token": admin_token}
    accepted = create_server(client, admin_token, "never", site="site-a", image="no-such-image")
    server_id = accepted["server"]["id"]
    failed = wait_operation(client, admin_token, accepted["operation"]["id"])
    assert failed["status"] == "failed", failed
    assert "no-such-image" in failed["error"], failed

    shown = client.get(f"/v1/servers/{server_id}", headers=headers).json()["server"]
    assert shown["status"] == "ERROR"
    assert shown["site_server_id"] is None
    assert shown["error"] == failed["error"]

    failed_at = failed["finished_at"]
    _wait_for(
        lambda: len([p for p in _passes(services) if p.finished_at and _after(p, failed_at)]) >= 3,
        timeout=30,
    )
    passes = [p for p in _passes(services) if p.finished_at and _after(p, failed_at)]
    assert all(p.status == "succeeded" for p in passes), [p.error for p in passes]

    def reports(of: list[ConvergencePass]) -> list[dict[str, Any]]:
        return [r for p in of for r in p.repairs if r["resource"]["id"] == server_id]

    first = reports([p for p in _passes(services) if p.finished_at])
    assert first, "the pass after the failure did not report the server"
    assert all(r["action"] == "none: left in ERROR" for r in first), first
    assert "no-such-image" in first[0]["drift"]
    assert not reports(passes[-2:]), "reported again and again"
    operations = services.operations.list(None, resource_id=server_id, limit=10)
    assert [o.kind for o in operations] == ["server.create"]
    again = client.get(f"/v1/servers/{server_id}", headers=headers).json()["server"]
    assert again["status"] == "ERROR"
    assert again["error"] == failed["error"]


def _after(record: ConvergencePass, iso: str) -> bool:
    return record.started_at > datetime.fromisoformat(iso.replace("Z", "+00:00"))
