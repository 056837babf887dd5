"""The protection schedule at real site-sims and a real ``cascade worker``: a plan with a
schedule gets a checkpoint that nobody asked for, taken by the engine's once-per-cluster
pass; a plan without one (null: manual only) gets none; the plan then shows its next
checkpoint an interval after the new one's consistency point, and ``/metrics`` counts the
scheduled checkpoint."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from cascade.cli.embedded import EmbeddedSite
from cascade.db.models import Operation
from cascade.db.protection_models import Checkpoint, ProtectionPlan
from cascade.protection.schedule import SCHEDULE_KEY_PREFIX
from cascade.services import Services
from tests.engine.conftest import WorkerFactory
from tests.protection.vnf import make_vnf, protect

EVERY_S = 60
DEADLINE_S = 120.0  # generous: a loaded machine; the pass itself runs every second


def _checkpoints(client: TestClient, token: str, plan_id: str) -> list[dict[str, Any]]:
    listed = client.get("/v1/checkpoints", headers={"X-Auth-Token": token}).json()
    return [c for c in listed["checkpoints"] if c["plan_id"] == plan_id]


def _available(client: TestClient, token: str, plan_id: str) -> dict[str, Any]:
    """The plan's first checkpoint once it ended (failing the test if it failed)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        found = _checkpoints(client, token, plan_id)
        if found and found[0]["status"] in ("available", "failed"):
            assert found[0]["status"] == "available", found[0]
            return found[0]
        assert time.monotonic() < deadline, f"no scheduled checkpoint ended: {found}"
        time.sleep(0.5)


def test_a_plan_with_a_schedule_gets_checkpoints_nobody_asked_for(
    client: TestClient,
    admin_token: str,
    services: Services,
    two_sites: list[EmbeddedSite],
    start_worker: WorkerFactory,
) -> None:
    start_worker("w1", CASCADE_PROTECTION_SCHEDULE_INTERVAL="1")
    source, target = two_sites
    first, second = make_vnf(client, admin_token, source, 2)
    manual = protect(client, admin_token, [first], target.site_name, name="manual")
    assert (manual["checkpoint_every_s"], manual["next_checkpoint_at"]) == (None, None)
    plan = protect(
        client, admin_token, [second], target.site_name, name="every", checkpoint_every_s=EVERY_S
    )
    assert plan["checkpoint_every_s"] == EVERY_S
    created = datetime.fromisoformat(plan["created_at"])
    assert datetime.fromisoformat(plan["next_checkpoint_at"]) == created + timedelta(
        seconds=EVERY_S
    )
    assert _checkpoints(client, admin_token, plan["id"]) == []

    # The plan was made an interval ago, as far as the schedule can tell: its first is due.
    with services.db.session() as session:
        session.execute(
            update(ProtectionPlan)
            .where(ProtectionPlan.id == plan["id"])
            .values(created_at=created - timedelta(seconds=EVERY_S))
        )
    checkpoint = _available(client, admin_token, plan["id"])

    with services.db.session() as session:
        key = session.scalar(
            select(Operation.idempotency_key)
            .join(Checkpoint, Checkpoint.operation_id == Operation.id)
            .where(Checkpoint.id == checkpoint["id"])
        )
    assert key is not None
    assert key.startswith(SCHEDULE_KEY_PREFIX), key
    shown = client.get(
        f"/v1/protection-plans/{plan['id']}", headers={"X-Auth-Token": admin_token}
    ).json()["plan"]
    point = datetime.fromisoformat(checkpoint["consistency_point"])
    assert datetime.fromisoformat(shown["next_checkpoint_at"]) == point + timedelta(seconds=EVERY_S)
    assert shown["rpo_s"] is not None
    assert _checkpoints(client, admin_token, manual["id"]) == []  # manual only: none taken
    metrics = client.get("/metrics", headers={"X-Auth-Token": admin_token}).text
    assert 'cascade_protection_scheduled_checkpoints{status="succeeded"} 1.0' in metrics
    assert f'cascade_protection_rpo_seconds{{name="every",plan="{plan["id"]}"}}' in metrics
