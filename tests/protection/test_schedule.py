"""A plan's schedule without sites: when its next checkpoint is due (pure), which plans a pass
finds due and what it accepts (rows a plan would have; no site is contacted, no worker
runs), overlapping passes accepting one checkpoint between them, and the API refusing a
schedule out of bounds with a 400 naming the field; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cascade.config import Settings
from cascade.db.models import Operation, Project, Site
from cascade.db.protection_models import Checkpoint, ProtectionPlan
from cascade.errors import Conflict
from cascade.protection.plans import PlanService
from cascade.protection.schedule import (
    Timing,
    due_at,
    due_plans,
    next_checkpoint_at,
    schedule_key,
)
from cascade.protection.schedule_tick import checkpoint_due
from cascade.services import Services
from tests.engine.conftest import backend_settings

__all__ = ["backend_settings"]

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(seconds=60)


@pytest.fixture
def settings(backend_settings: Settings) -> Settings:
    return backend_settings


def test_the_next_checkpoint_is_an_interval_after_the_newest_anchor() -> None:
    created = NOW - timedelta(hours=1)
    assert next_checkpoint_at(None, created, None) is None  # manual only
    assert next_checkpoint_at(60, created, None) == created + MINUTE  # before the first
    assert next_checkpoint_at(60, created, NOW) == NOW + MINUTE

    idle = Timing(anchor=NOW - 2 * MINUTE, in_flight=False)
    assert due_at(60, created, idle, NOW) == NOW - MINUTE
    assert due_at(None, created, idle, NOW) is None
    assert due_at(300, created, idle, NOW) is None  # not yet: due in 3 minutes
    assert due_at(120, created, idle, NOW) == NOW  # due exactly now
    running = Timing(anchor=NOW - 2 * MINUTE, in_flight=True)
    assert due_at(60, created, running, NOW) is None  # one queued or running: wait for it
    assert due_at(60, NOW - 2 * MINUTE, Timing(None, False), NOW) == NOW - MINUTE


def _sites(session: Session) -> tuple[str, str, str]:
    """The admin project's id and two sites' (never contacted)."""
    project = session.scalars(select(Project.id).where(Project.name == "admin")).one()
    common = {"identity_url": "http://127.0.0.1:9/v3", "credential": b"x", "project_id": project}
    source, target = (
        Site(name=n, region_name=n, username="admin", site_project_name="admin", **common)
        for n in ("a", "b")
    )
    session.add_all([source, target])
    session.flush()
    return project, source.id, target.id


def _plans(services: Services, now: datetime) -> dict[str, str]:
    """Plans of every kind the pass must tell apart; their ids by name."""
    with services.db.session() as session:
        project, source, target = _sites(session)
        specs = {  # name: (schedule, created, status)
            "due": (60, now - 2 * MINUTE, "ACTIVE"),
            "failed-last": (60, now - 2 * MINUTE, "ERROR"),
            "manual": (None, now - 2 * MINUTE, "ACTIVE"),
            "young": (60, now - MINUTE / 2, "ACTIVE"),
            "building": (60, now - 2 * MINUTE, "BUILD"),
        }
        plans = {
            name: ProtectionPlan(
                project_id=project, name=name, source_site_id=source, target_site_id=target,
                strategy="group_snapshot", freeze_bound_s=30.0, retention=2,
                chunk_store="file:///nowhere", status=status, checkpoint_every_s=every,
                created_at=created,
            )
            for name, (every, created, status) in specs.items()
        }  # fmt: skip
        session.add_all(plans.values())
        session.flush()
        return {name: plan.id for name, plan in plans.items()}


def _checkpoint_rows(services: Services, plan_id: str) -> list[Checkpoint]:
    with services.db.session() as session:
        return list(
            session.scalars(
                select(Checkpoint).where(Checkpoint.plan_id == plan_id).order_by(Checkpoint.id)
            )
        )


def test_a_pass_accepts_one_checkpoint_per_due_plan_and_overlapping_passes_one_between_them(
    services: Services,
) -> None:
    now = datetime.now(UTC)
    ids = _plans(services, now)
    plans = PlanService(services.db, services.operations)
    with services.db.session() as session:
        found = {d.plan_id: d.due_at for d in due_plans(session, now)}
    assert set(found) == {ids["due"], ids["failed-last"]}

    assert checkpoint_due(services.db, plans, now) == {"due": 2, "accepted": 2, "refused": 0}
    (checkpoint,) = _checkpoint_rows(services, ids["due"])
    assert checkpoint.status == "pending"
    with services.db.session() as session:
        operation = session.get_one(Operation, checkpoint.operation_id)
        assert operation.kind == "plan.checkpoint"
        assert operation.idempotency_key == schedule_key(ids["due"], found[ids["due"]])
        assert session.get_one(ProtectionPlan, ids["due"]).status == "CHECKPOINTING"
    assert _checkpoint_rows(services, ids["manual"]) == []
    assert _checkpoint_rows(services, ids["young"]) == []

    # The next pass: nothing due (each checkpoint queued). A pass that read the plans before
    # the first accepted gets the same operation back (the key), any other a 409.
    assert checkpoint_due(services.db, plans, now) == {"due": 0, "accepted": 0, "refused": 0}
    key = schedule_key(ids["due"], found[ids["due"]])
    again_id, again = plans.checkpoint(ids["due"], operation.project_id, key)
    assert (again_id, again.id) == (checkpoint.id, operation.id)
    with pytest.raises(Conflict, match="CHECKPOINTING"):
        plans.checkpoint(ids["due"], operation.project_id, "another-key")
    assert len(_checkpoint_rows(services, ids["due"])) == 1

    # It failed before its snapshot: tried again one interval after it began, not at once.
    with services.db.session() as session:
        session.execute(
            update(Checkpoint).where(Checkpoint.id == checkpoint.id).values(status="failed")
        )
        session.execute(
            update(ProtectionPlan).where(ProtectionPlan.id == ids["due"]).values(status="ERROR")
        )
    began = checkpoint.created_at
    with services.db.session() as session:
        assert ids["due"] not in {d.plan_id for d in due_plans(session, began + MINUTE / 2)}
        (later,) = [d for d in due_plans(session, began + MINUTE) if d.plan_id == ids["due"]]
    assert later.due_at == began + MINUTE
    # By then "young" is due too; "failed-last" still has its checkpoint queued.
    assert checkpoint_due(services.db, plans, began + MINUTE)["accepted"] == 2
    assert len(_checkpoint_rows(services, ids["young"])) == 1
    assert len(_checkpoint_rows(services, ids["due"])) == 2


def test_the_plan_shows_its_schedule_and_next_checkpoint(
    services: Services, client: TestClient, admin_token: str
) -> None:
    now = datetime.now(UTC)
    ids = _plans(services, now)
    headers = {"X-Auth-Token": admin_token}
    listed = {
        p["name"]: p for p in client.get("/v1/protection-plans", headers=headers).json()["plans"]
    }
    assert listed["manual"]["checkpoint_every_s"] is None
    assert listed["manual"]["next_checkpoint_at"] is None
    young = listed["young"]
    assert young["checkpoint_every_s"] == 60
    assert (
        datetime.fromisoformat(young["next_checkpoint_at"])
        == datetime.fromisoformat(young["created_at"]) + MINUTE
    )
    point = now - MINUTE / 4  # a checkpoint with a consistency point: the anchor
    with services.db.session() as session:
        session.add(
            Checkpoint(
                plan_id=ids["young"], project_id=young["project_id"], status="available",
                operation_id="op", store_url="file:///nowhere", consistency_point=point,
            )
        )  # fmt: skip
    shown = client.get(f"/v1/protection-plans/{ids['young']}", headers=headers).json()["plan"]
    assert datetime.fromisoformat(shown["next_checkpoint_at"]) == point + MINUTE


@pytest.mark.parametrize(
    ("every", "problem"),
    [(59, "greater than or equal to 60"), (0, "greater than or equal to 60"),
     (31 * 86400, "less than or equal to"), ("60", "valid integer"), (60.5, "valid integer")],
)  # fmt: skip
def test_a_schedule_out_of_bounds_is_refused_naming_the_field(
    client: TestClient, admin_token: str, every: object, problem: str
) -> None:
    before = client.get("/v1/operations", headers={"X-Auth-Token": admin_token}).json()
    response = client.post(
        "/v1/protection-plans",
        headers={"X-Auth-Token": admin_token},
        json={
            "name": "p",
            "members": [{"server": "s"}],
            "target_site": "b",
            "checkpoint_every_s": every,
        },
    )
    assert response.status_code == 400, response.text
    assert "checkpoint_every_s" in response.text
    assert problem in response.text
    after = client.get("/v1/operations", headers={"X-Auth-Token": admin_token}).json()
    assert after == before
