"""The detail pages of a network, a protection plan and a replication job: what they show,
the role rule (a reader sees and has no button, a member acts through a CSRF-checked form,
another tenant gets 404 and no link), no secret on them, and a fixed number of SQL
statements whether a plan has 3 or 120 checkpoints, a network 3 or 120 ports, a job 3 or
120 resources; the Networks list likewise with 1 or 40 networks."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from cascade.services import Services
from tests.conftest import Tenant, make_tenant
from tests.ui.helpers import csrf_of, ui_login
from tests.ui.seeding import Seeded, seed_world
from tests.ui.test_scale import counting


def _login(client: TestClient, tenant: Tenant, role: str) -> None:
    ui_login(client, f"{tenant.name}-{role}", "pw-" + tenant.name, tenant.name)


def _pages(seeded: Seeded) -> dict[str, str]:
    return {
        "network": f"/ui/networks/{seeded.network}",
        "plan": f"/ui/protection/plans/{seeded.plan}",
        "job": f"/ui/replication/jobs/{seeded.job}",
    }


def _actions(seeded: Seeded) -> dict[str, str]:
    return {
        "checkpoint": f"/ui/protection/plans/{seeded.plan}/checkpoints",
        "sync": f"/ui/networks/{seeded.network}/sync",
        "rerun": f"/ui/replication/policies/{seeded.policy}/jobs",
    }


def test_a_member_sees_and_acts_on_its_own_resources(
    client: TestClient, services: Services, admin_token: str
) -> None:
    member = make_tenant(client, admin_token, "member")
    seeded = seed_world(services, member.project_id, 3)
    _login(client, member, "member")
    network = client.get(_pages(seeded)["network"])
    assert network.status_code == 200, network.text
    text = network.text
    assert "1 hosts converged" not in text
    assert "2 hosts converged" in text  # hosts 0 and 2 applied the network's revision 4
    assert "1 lagging" in text
    assert "10.9.255.1" in text  # its service IP
    assert 'id="network-sync"' in text
    assert 'id="fabric-hosts"' not in text  # host names are the admin's (as /v1/fabric)
    plan = client.get(_pages(seeded)["plan"]).text
    assert 'id="timeline"' in plan  # the last restore's operation, as a timeline
    assert plan.count('class="bar succeeded"') == 3
    assert "11.0 s" in plan  # the RTO of the newest restore
    assert "8/8 blocks, 1/1 volumes verified" in plan
    assert 'id="take-checkpoint"' in plan
    assert "a checkpoint every 3600 s, the next due" in plan  # an hour after the newest
    job = client.get(_pages(seeded)["job"]).text
    assert "66.7 % of 300 B" in job  # per site: 200 of 300 bytes copied
    assert "image-2" in job
    assert 'id="run-policy"' in job
    for name, listing in (("network", "networks"), ("plan", "protection"), ("job", "replication")):
        assert _pages(seeded)[name] in client.get(f"/ui/{listing}").text  # linked from its list
    for text in (network.text, plan, job):
        assert "secret-credential" not in text

    csrf = csrf_of(plan)
    assert client.post(_actions(seeded)["checkpoint"]).status_code == 403  # no CSRF token
    done = {
        name: client.post(action, data={"csrf": csrf}, follow_redirects=False)
        for name, action in _actions(seeded).items()
    }
    assert {name: answer.status_code for name, answer in done.items()} == dict.fromkeys(done, 303)
    assert done["checkpoint"].headers["location"].startswith("/ui/operations/")
    assert done["sync"].headers["location"].startswith("/ui/operations/")
    rerun = done["rerun"]
    assert rerun.headers["location"].startswith("/ui/replication/jobs/")
    assert client.get(rerun.headers["location"]).status_code == 200
    body = client.get(f"/ui/replication/jobs/{seeded.job}/body")
    assert body.status_code == 200  # still running: htmx keeps polling


def test_a_reader_sees_without_buttons_and_cannot_act(
    client: TestClient, services: Services, admin_token: str
) -> None:
    reader = make_tenant(client, admin_token, "reader")
    seeded = seed_world(services, reader.project_id, 3)
    _login(client, reader, "reader")
    for name, path in _pages(seeded).items():
        answer = client.get(path)
        assert answer.status_code == 200, name
        assert 'method="post" action="/ui/logout"' in answer.text
        assert answer.text.count('method="post"') == 1, name  # only the logout form
    csrf = csrf_of(client.get(_pages(seeded)["plan"]).text)
    for action in _actions(seeded).values():
        assert client.post(action, data={"csrf": csrf}).status_code == 403, action


def test_another_tenant_never_sees_them(
    client: TestClient, services: Services, admin_token: str
) -> None:
    owner = make_tenant(client, admin_token, "member")
    seeded = seed_world(services, owner.project_id, 3)
    other = make_tenant(client, admin_token, "member")
    _login(client, other, "member")
    for path in _pages(seeded).values():
        assert client.get(path).status_code == 404, path
    assert client.get(f"/ui/operations/{seeded.restore_operation}").status_code == 404
    for page in ("networks", "protection", "replication"):
        listed = client.get(f"/ui/{page}").text
        assert all(path not in listed for path in _pages(seeded).values())
    csrf = csrf_of(client.get("/ui/networks").text)
    for action in _actions(seeded).values():
        assert client.post(action, data={"csrf": csrf}).status_code == 404, action


def _statements(client: TestClient, services: Services, path: str) -> list[str]:
    """Statements the page ran, but the identity read model's revision check (it comes and
    goes with time)."""
    with counting(services) as statements:
        answer = client.get(path)
    assert answer.status_code == 200, answer.text
    return [sql for sql in statements if not re.search(r"\bidentity_", sql)]


@pytest.mark.parametrize("page", ["network", "plan", "job"])
def test_detail_pages_are_a_fixed_number_of_statements(
    client: TestClient, services: Services, admin_token: str, page: str
) -> None:
    tenant = make_tenant(client, admin_token, "member")
    few, many = (
        seed_world(services, tenant.project_id, 3),
        seed_world(services, tenant.project_id, 120),
    )
    _login(client, tenant, "member")
    _statements(client, services, _pages(few)[page])  # templates compiled
    ran = [_statements(client, services, _pages(s)[page]) for s in (few, many)]
    print(f"{page}: {[len(r) for r in ran]} statements with 3 and 120 rows")
    assert len(ran[0]) == len(ran[1]), ran


def test_the_networks_list_is_a_fixed_number_of_statements(
    client: TestClient, services: Services, admin_token: str
) -> None:
    tenant = make_tenant(client, admin_token, "member")
    seed_world(services, tenant.project_id, 2)
    _login(client, tenant, "member")
    _statements(client, services, "/ui/networks")
    one = _statements(client, services, "/ui/networks")
    for _ in range(39):
        seed_world(services, tenant.project_id, 2)
    many = _statements(client, services, "/ui/networks")
    print(f"/ui/networks: {len(one)} statements with 1 network, {len(many)} with 40")
    assert len(one) == len(many), (one, many)
