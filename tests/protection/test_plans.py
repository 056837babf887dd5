"""Bad protection plans are refused with a 4xx naming the problem and nothing is queued; the
API lists and shows what it accepted."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from cascade.cli.embedded import EmbeddedSite
from tests.conftest import make_tenant
from tests.engine.conftest import create_server


def _operations(client: TestClient, token: str) -> int:
    listed = client.get("/v1/operations", headers={"X-Auth-Token": token}).json()
    return len(listed["operations"])


def _post(client: TestClient, token: str, **body: Any) -> Any:
    return client.post("/v1/protection-plans", headers={"X-Auth-Token": token}, json=body)


def _refused(response: Any, problem: str) -> None:
    assert response.status_code == 400, response.text
    assert problem in response.text


def test_bad_plans_are_refused_before_anything_is_queued(
    client: TestClient, admin_token: str, two_sites: list[EmbeddedSite]
) -> None:
    source, target = two_sites
    server = create_server(client, admin_token, "vm", site=source.site_name)["server"]
    members = [{"server": server["id"]}]
    before = _operations(client, admin_token)

    same = _post(client, admin_token, name="p", members=members, target_site=source.site_name)
    _refused(same, "is the servers' own site")
    unknown = _post(client, admin_token, name="p", members=members, target_site="nowhere")
    _refused(unknown, "'nowhere'")
    missing = [{"server": "no-such-server"}]
    absent = _post(client, admin_token, name="p", members=missing, target_site=target.site_name)
    _refused(absent, "no-such-server")
    twice = _post(client, admin_token, name="p", members=members * 2, target_site=target.site_name)
    _refused(twice, "named twice")
    empty = _post(client, admin_token, name="p", members=[], target_site=target.site_name)
    assert empty.status_code == 400, empty.text
    assert _operations(client, admin_token) == before

    tenant = make_tenant(client, admin_token)
    foreign = _post(client, tenant.token, name="p", members=members, target_site=target.site_name)
    _refused(foreign, server["id"])
    assert _operations(client, tenant.token) == 0

    assert client.get("/v1/protection-plans", headers={"X-Auth-Token": admin_token}).json() == {
        "plans": []
    }
    nothing = client.get("/v1/checkpoints/nope", headers={"X-Auth-Token": admin_token})
    assert nothing.status_code == 404
    no_plan = client.post(
        "/v1/protection-plans/nope/checkpoints", headers={"X-Auth-Token": admin_token}
    )
    assert no_plan.status_code == 404, no_plan.text
