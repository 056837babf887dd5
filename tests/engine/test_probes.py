"""``/v1/probes`` runs as many empty recorded steps as asked, none included (the engine's own
cost per operation, as ``cascade bench engine`` measures it), through a real worker; a step
count out of range is a 400 that queues nothing."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from cascade.engine.queue import OPERATIONS_QUEUE
from cascade.services import Services
from tests.engine.conftest import WorkerFactory, wait_operation


def _probe(client: TestClient, token: str, body: dict[str, Any] | None) -> dict[str, Any]:
    response = client.post("/v1/probes", headers={"X-Auth-Token": token}, json=body)
    assert response.status_code == 202, response.text
    operation: dict[str, Any] = response.json()["operation"]
    return operation


def test_probes_run_the_steps_they_ask_for(
    client: TestClient, admin_token: str, start_worker: WorkerFactory
) -> None:
    start_worker("w-probes")
    asked = {None: ["empty step"], 0: [], 3: [f"empty step {n}" for n in (1, 2, 3)]}
    for steps, labels in asked.items():
        body = None if steps is None else {"steps": steps}
        operation = wait_operation(client, admin_token, _probe(client, admin_token, body)["id"])
        assert operation["status"] == "succeeded", operation
        assert [step["name"] for step in operation["steps"]] == labels
        assert all(step["status"] == "succeeded" for step in operation["steps"])
        # Started and finished even with no step to mark it running.
        assert operation["started_at"] is not None
        assert operation["finished_at"] >= operation["started_at"]


def test_a_step_count_out_of_range_is_refused(
    client: TestClient, admin_token: str, services: Services
) -> None:
    before = services.queue.depth()[OPERATIONS_QUEUE]
    for body in ({"steps": -1}, {"steps": 101}, {"steps": "many"}, {"steps": 1, "x": 1}):
        response = client.post("/v1/probes", headers={"X-Auth-Token": admin_token}, json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["message"].startswith("Invalid input: ")
    assert services.queue.depth()[OPERATIONS_QUEUE] == before
