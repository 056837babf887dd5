"""The protection lists stay a fixed number of SQL statements however many plans, checkpoints
and restores they show (no N+1): ``GET /v1/protection-plans``, ``/v1/checkpoints``,
``/v1/restores`` and the dashboard's protection page, with 1 and then 30 of each seeded as
rows (each plan with two members, each checkpoint with two volumes)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from cascade.db.models import Server
from cascade.db.protection_models import PlanMember, ProtectionPlan
from cascade.services import Services
from tests.conftest import ADMIN_PASSWORD
from tests.ui.helpers import ui_login
from tests.ui.seeding import seed_world
from tests.ui.test_scale import project_of, statements_for

# The lists' tables, as statements_for finds them (by name) in what a page ran.
TABLES = ("protection_plans", "plan_members", "checkpoint", "restores", "sites")
PATHS = ("/v1/protection-plans", "/v1/checkpoints", "/v1/restores", "/ui/protection")


def seed(services: Services, project_id: str, plans: int) -> None:
    """``plans`` plans of the project, each with a checkpoint, a restore and two members."""
    for _ in range(plans):
        seed_world(services, project_id, 1)
    with services.db.session() as session:
        bare = session.scalars(
            select(ProtectionPlan).where(ProtectionPlan.id.not_in(select(PlanMember.plan_id)))
        ).all()
        for plan in bare:
            for position in (2, 1):
                server = Server(name=f"vm-{position}", project_id=project_id,
                                site_id=plan.source_site_id, flavor="m1", image="cirros",
                                status="ACTIVE")  # fmt: skip
                session.add(server)
                session.flush()
                session.add(PlanMember(plan_id=plan.id, position=position, server_id=server.id,
                                       volume_ids=[f"vol-{position}"]))  # fmt: skip


def statements(client: TestClient, services: Services) -> dict[str, int]:
    """Per path, how many statements on each of the lists' tables answering it ran."""
    return {
        f"{path} {table}": statements_for(client, services, path, table)
        for path in PATHS
        for table in TABLES
    }


def test_the_protection_lists_are_a_fixed_number_of_queries(
    client: TestClient, services: Services, admin_token: str
) -> None:
    project_id = project_of(client, admin_token)
    ui_login(client, "admin", ADMIN_PASSWORD, "admin")
    client.headers["X-Auth-Token"] = admin_token
    seed(services, project_id, 1)
    statements(client, services)  # templates compiled
    one = statements(client, services)
    seed(services, project_id, 29)
    many = statements(client, services)
    print(f"statements with 1 plan, checkpoint and restore: {one}, with 30: {many}")
    plans = client.get("/v1/protection-plans").json()["plans"]
    assert len(plans) == 30
    assert all([m["volumes"] for m in p["members"]] == [["vol-1"], ["vol-2"]] for p in plans)
    assert all(p["rpo_s"] is not None and p["target_site"] for p in plans)
    checkpoints = client.get("/v1/checkpoints").json()["checkpoints"]
    assert len(checkpoints) == 30
    assert all(len(c["volumes"]) == 2 for c in checkpoints)
    restores = client.get("/v1/restores").json()["restores"]
    assert len(restores) == 30
    assert all(r["target_site"].endswith("-b") for r in restores)
    assert many == one
