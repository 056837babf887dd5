"""Finished operations are kept for ``operation_retention`` seconds, then the engine's prune
(a schedule, once per cluster) removes them with their steps and DBOS's records of their
workflows; unfinished and recent ones stay."""

from __future__ import annotations

import time
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cascade.db.models import Operation, OperationStep
from cascade.engine.prune import prune
from cascade.services import Services
from tests.engine.conftest import WorkerFactory, wait_operation


def _probe(client: TestClient, token: str, key: str | None = None) -> str:
    headers = {"X-Auth-Token": token, **({"Idempotency-Key": key} if key else {})}
    response = client.post("/v1/probes", headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["operation"]["id"])


def _known(services: Services, operation_id: str) -> dict[str, int]:
    """What the database still holds of an operation: its row, its steps, DBOS's workflow."""
    with services.db.session() as session:
        rows = session.scalar(select(func.count()).where(Operation.id == operation_id)) or 0
        steps = session.scalar(
            select(func.count()).where(OperationStep.operation_id == operation_id)
        )
    workflows = services.queue.client.list_workflows(
        workflow_ids=[operation_id], load_input=False, load_output=False
    )
    return {"operation": rows, "steps": steps or 0, "workflow": len(workflows)}


def test_unfinished_and_recent_operations_stay(
    client: TestClient, admin_token: str, services: Services, start_worker: WorkerFactory
) -> None:
    queued = _probe(client, admin_token)
    # Marked finished long ago by hand while its workflow has not even started: DBOS's
    # record says it has not ended, so it stays.
    with services.db.session() as session:
        operation = session.get(Operation, queued)
        assert operation is not None
        operation.status = "succeeded"
        operation.finished_at = operation.created_at - timedelta(days=30)
    assert prune(services.db, services.queue.client, 1.0)["operations"] == 0
    assert _known(services, queued)["operation"] == 1

    start_worker("w-keep")
    done = _probe(client, admin_token)
    assert wait_operation(client, admin_token, done)["status"] == "succeeded"
    # (The worker may have run the first one's workflow meanwhile: it ended, and, marked
    # finished 30 days ago, the first one may go now.)
    prune(services.db, services.queue.client, 3600.0)
    assert _known(services, done) == {"operation": 1, "steps": 1, "workflow": 1}


def test_the_schedule_prunes_finished_operations(
    client: TestClient, admin_token: str, services: Services, start_worker: WorkerFactory
) -> None:
    start_worker("w-prune", CASCADE_OPERATION_RETENTION="3", CASCADE_CONVERGENCE_INTERVAL="1")
    first = _probe(client, admin_token, key="prune-me")
    assert wait_operation(client, admin_token, first)["status"] == "succeeded"
    deadline = time.monotonic() + 60
    while _known(services, first) != {"operation": 0, "steps": 0, "workflow": 0}:
        assert time.monotonic() < deadline, f"still there after 60 s: {_known(services, first)}"
        time.sleep(0.2)
    gone = client.get(f"/v1/operations/{first}", headers={"X-Auth-Token": admin_token})
    assert gone.status_code == 404, gone.text
    # The Idempotency-Key went with its operation: the same request is a new operation.
    assert _probe(client, admin_token, key="prune-me") != first
