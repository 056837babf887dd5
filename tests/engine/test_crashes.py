"""Workers killed with SIGKILL at random moments lose nothing: every operation finishes once,
work on each server keeps its order, and no site ends up with a duplicate server."""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cascade.cli.embedded import EmbeddedSite, EmbeddedWorker
from cascade.config import Settings
from cascade.db.models import Operation
from cascade.services import Services
from cascade.sites.driver import SiteDriver
from tests.engine.conftest import WorkerFactory, create_server, wait_nothing_pending, wait_operation

SERVERS = 48  # each gets a create and, for two in three, a delete queued right behind it
WAVES = 3  # after each wave is queued, the worker busiest at that moment is SIGKILLed


@pytest.fixture
def settings(backend_settings: Settings) -> Settings:
    return backend_settings


def _kill_a_busy_worker(
    workers: list[EmbeddedWorker], services: Services, chaos: random.Random
) -> bool:
    """SIGKILL a worker with operations running (any worker if none runs within 5 s), then
    restart its slot at once or after a while."""
    deadline = time.monotonic() + 5
    busy: list[str] = []
    while not busy and time.monotonic() < deadline:
        with services.db.session() as session:
            busy = list(
                session.scalars(select(Operation.executor_id).where(Operation.status == "running"))
            )
        time.sleep(0.05)
    victim = next((w for w in workers if w.executor_id in busy), chaos.choice(workers))
    victim.kill()
    time.sleep(chaos.choice((0, chaos.uniform(0.5, 3))))
    victim.start()
    return victim.executor_id in busy


def test_sigkilled_workers_lose_nothing(
    client: TestClient,
    admin_token: str,
    services: Services,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    workers = [start_worker(f"w{index}") for index in (1, 2, 3)]
    headers = {"X-Auth-Token": admin_token}
    created, deleted, killed_busy = {}, {}, []
    chaos = random.Random(5)
    for index in range(SERVERS):
        site = two_sites[index % 2].site_name
        accepted = create_server(client, admin_token, f"vm-{index}", site=site)
        server_id = accepted["server"]["id"]
        created[server_id] = accepted["operation"]["id"]
        if index % 3:
            response = client.delete(f"/v1/servers/{server_id}", headers=headers)
            assert response.status_code == 202, response.text
            deleted[server_id] = response.json()["operation"]["id"]
        if (index + 1) % (SERVERS // WAVES) == 0:
            killed_busy.append(_kill_a_busy_worker(workers, services, chaos))
    outcomes = {
        op_id: wait_operation(client, admin_token, op_id, timeout=240)
        for op_id in [*created.values(), *deleted.values()]
    }
    assert any(killed_busy), "no kill hit a worker while it ran operations"
    failed = {op_id: op["error"] for op_id, op in outcomes.items() if op["status"] != "succeeded"}
    assert failed == {}

    for server_id, delete_id in deleted.items():  # per-resource order: create ended first
        assert outcomes[created[server_id]]["finished_at"] <= outcomes[delete_id]["started_at"]

    kept = {server_id for server_id in created if server_id not in deleted}
    listed = client.get("/v1/servers", headers=headers).json()["servers"]
    assert {s["id"] for s in listed} == kept
    assert all(s["status"] == "ACTIVE" for s in listed)
    at_sites: Counter[str] = Counter()
    for embedded in two_sites:
        servers = SiteDriver(embedded.access()).call(
            "list", lambda c: list(c.compute.servers(details=True))
        )
        at_sites.update(s.metadata.get("cascade_id") for s in servers)
    assert at_sites == Counter(dict.fromkeys(kept, 1)), "a duplicate or a leak at a site"


def test_a_stalled_worker_declared_dead_leaves_nothing_behind(
    client: TestClient, admin_token: str, start_worker: WorkerFactory, services: Services
) -> None:
    """SIGSTOP a worker past worker_dead_after while work streams: a peer resumes its
    workflows, whatever it dequeued after it woke is resumed too, and no finished operation
    is reopened by its late run."""
    stalled, _peer = start_worker("w1"), start_worker("w2")
    headers = {"X-Auth-Token": admin_token}
    submitted = []
    for round_ in range(3):
        submitted += [
            client.post("/v1/probes", headers=headers).json()["operation"]["id"] for _ in range(60)
        ]
        if round_ == 0:
            assert stalled.pid is not None
            os.kill(stalled.pid, signal.SIGSTOP)
            time.sleep(4)  # worker_dead_after is 2 s in these tests
            os.kill(stalled.pid, signal.SIGCONT)
    outcomes = [wait_operation(client, admin_token, op_id, timeout=120) for op_id in submitted]
    assert {op["status"] for op in outcomes} == {"succeeded"}
    time.sleep(1)  # a late duplicate run would reopen an operation now
    listed = client.get("/v1/operations", headers=headers, params={"limit": 1000}).json()
    assert {op["status"] for op in listed["operations"]} == {"succeeded"}
    wait_nothing_pending(services)
