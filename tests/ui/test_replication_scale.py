"""The replication lists stay a fixed number of SQL statements however many policies and jobs
they show (no N+1): the dashboard's replication page and ``GET /v1/replication/policies`` and
``/v1/replication/jobs``, with 1 and then 40 policies (80 jobs) seeded as rows."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from cascade.services import Services
from tests.conftest import ADMIN_PASSWORD
from tests.ui.helpers import ui_login
from tests.ui.seeding import seed_policies
from tests.ui.test_scale import counting, project_of

# The lists' tables (the identity read model's revision check comes and goes, so only these).
LISTED = re.compile(r"\breplica|\bsites\b")
PATHS = ("/ui/replication", "/v1/replication/policies", "/v1/replication/jobs")


def statements(client: TestClient, services: Services, token: str) -> dict[str, int]:
    """Per path, how many statements on the lists' tables answering it ran."""
    counted = {}
    for path in PATHS:
        with counting(services) as ran:
            answer = client.get(path, headers={"X-Auth-Token": token})
        assert answer.status_code == 200, answer.text
        counted[path] = len([sql for sql in ran if LISTED.search(sql)])
    return counted


def test_the_replication_lists_are_a_fixed_number_of_queries(
    client: TestClient, services: Services, admin_token: str
) -> None:
    project_id = project_of(client, admin_token)
    ui_login(client, "admin", ADMIN_PASSWORD, "admin")
    seed_policies(services, project_id, 1)
    statements(client, services, admin_token)  # templates compiled
    one = statements(client, services, admin_token)
    seed_policies(services, project_id, 39)
    many = statements(client, services, admin_token)
    headers = {"X-Auth-Token": admin_token}
    policies = client.get("/v1/replication/policies", headers=headers).json()["policies"]
    assert len(policies) == 40
    assert all(p["last_job"]["progress"] == {"done": 2, "running": 1} for p in policies)
    assert all(len(p["failing"]) == 1 and p["sites"] for p in policies)
    assert len(client.get("/v1/replication/jobs", headers=headers).json()["jobs"]) == 80
    print(f"statements with 1 policy: {one}, with 40: {many}")
    assert many == one
