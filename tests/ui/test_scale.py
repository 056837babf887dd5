"""The dashboard's reads stay a fixed number of SQL statements however many rows a page
shows (no N+1): the operations list with 1,000 operations and the sites page's replica
report with 100 replica sites, seeded as rows. Prints how long each page took."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event

from cascade.db.models import IdentityReplica, Operation, OperationStep, Site
from cascade.services import Services
from tests.conftest import ADMIN_PASSWORD
from tests.ui.helpers import ui_login


def seed(services: Services, operations: int, sites: range, project_id: str) -> None:
    now = datetime.now(UTC)
    with services.db.session() as session:
        for index in sites:
            session.add(
                Site(
                    name=f"s{index:03d}",
                    region_name=f"R{index:03d}",
                    identity_url="http://127.0.0.1:9/v3",
                    username="admin",
                    site_project_name="admin",
                    credential=b"x",
                    project_id=project_id,
                    identity_mode="replica",
                )
            )
            session.add(IdentityReplica(name=f"s{index:03d}", seq=0, seen_at=now))  # fmt: skip
        for _ in range(operations):
            operation_id = uuid.uuid4().hex
            session.add(
                Operation(id=operation_id, kind="probe", resource_type="probe",
                          resource_id=operation_id, project_id=project_id, status="succeeded",
                          request={}, request_hash="h", created_at=now, finished_at=now)
            )  # fmt: skip
            session.add(
                OperationStep(operation_id=operation_id, name="nothing", status="succeeded",
                              started_at=now, finished_at=now)
            )  # fmt: skip


@contextmanager
def counting(services: Services) -> Iterator[list[str]]:
    """Statements run on ``services``' engine meanwhile, but those of the fabric controller's
    background loops (its nudge scan every two seconds, its acknowledgement flush): they run
    in the event loop's default executor (``asyncio.to_thread``, threads ``asyncio_N``), a
    page in Starlette's (anyio worker threads)."""
    statements: list[str] = []

    def count(*args: Any) -> None:
        if not threading.current_thread().name.startswith("asyncio_"):
            statements.append(str(args[2]))

    event.listen(services.db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(services.db.engine, "before_cursor_execute", count)


def statements_for(
    client: TestClient, services: Services, path: str, table: str = "operation"
) -> int:
    """How many statements the page ran on ``table``'s tables (the identity read model's
    revision check comes and goes with time, so it is left out)."""
    with counting(services) as statements:
        started = time.perf_counter()
        answer = client.get(path)
        took = time.perf_counter() - started
    assert answer.status_code == 200, answer.text
    on_table = [sql for sql in statements if table in sql]
    print(f"{path}: {len(statements)} SQL statements, {took * 1000:.0f} ms")
    return len(on_table)


def project_of(client: TestClient, token: str) -> str:
    """The id of the project ``token`` is scoped to."""
    answer = client.get(
        "/identity/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token}
    )
    return str(answer.json()["token"]["project"]["id"])


def test_the_operations_list_is_a_fixed_number_of_queries(
    client: TestClient, services: Services, admin_token: str
) -> None:
    project_id = project_of(client, admin_token)
    ui_login(client, "admin", ADMIN_PASSWORD, "admin")
    seed(services, 10, range(1), project_id)
    statements_for(client, services, "/ui/operations/rows?limit=1000")  # templates compiled
    few = statements_for(client, services, "/ui/operations/rows?limit=1000")
    one_replica = statements_for(client, services, "/ui/sites", "identity_change")
    seed(services, 990, range(1, 101), project_id)
    many = statements_for(client, services, "/ui/operations/rows?limit=1000")
    assert many == few == 2  # the operations, then all their steps
    statements_for(client, services, "/ui/operations")
    many_replicas = statements_for(client, services, "/ui/sites", "identity_change")
    assert many_replicas == one_replica  # the replica report is one read, not one per site
