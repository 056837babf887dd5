"""Every dashboard page renders for the roles that may see it (Cluster and Fabric: admin,
as their routes are), and the site health rule reads a replica's lag as the page says."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cascade.db.models import ConvergencePass, Site
from cascade.engine.convergence import repair
from cascade.engine.schemas import ConvergencePassOut
from cascade.identity.changelog import ReplicaLag
from cascade.services import Services
from cascade.sites.schemas import SiteOut
from cascade.ui.site_health import (
    BEHIND_AFTER_S,
    NO_CONTACT,
    QUIET_AFTER_S,
    Contact,
    contacts,
    site_row,
)
from tests.conftest import ADMIN_PASSWORD, make_tenant
from tests.ui.helpers import ui_login
from tests.ui.seeding import seed_world

PAGES = ("sites", "operations", "cluster", "fabric", "networks", "protection", "replication")


@pytest.mark.parametrize("name", PAGES)
def test_an_admin_sees_every_page(client: TestClient, name: str) -> None:
    ui_login(client, "admin", ADMIN_PASSWORD, "admin")
    answer = client.get(f"/ui/{name}")
    assert answer.status_code == 200, answer.text
    assert 'class="active"' in answer.text


def test_a_reader_sees_its_pages_but_not_the_cluster(client: TestClient, admin_token: str) -> None:
    reader = make_tenant(client, admin_token, "reader")
    ui_login(client, f"{reader.name}-reader", "pw-" + reader.name, reader.name)
    for name in ("sites", "operations", "networks", "protection", "replication"):
        assert client.get(f"/ui/{name}").status_code == 200, name
    for name in ("cluster", "fabric"):
        refused = client.get(f"/ui/{name}")
        assert refused.status_code == 403
        assert "admin required" in refused.text


def _site(identity: str = "replica", site_id: str = "s1") -> SiteOut:
    created = datetime.now(UTC) - timedelta(hours=1)
    return SiteOut(
        id=site_id, name="site-a", region_name="RegionA", identity_url="http://x/v3",
        username="admin", user_domain_name="Default", project_name="admin",
        project_id="p", identity=identity, created_at=created,
    )  # fmt: skip


def _lag(behind: int, lag_s: float, seen_s: float, key_set: str = "k1") -> ReplicaLag:
    seen = datetime.now(UTC) - timedelta(seconds=seen_s)
    return ReplicaLag("site-a", 5, behind, lag_s, seen, seen_s, seen_s > 75, key_set)


REACHED = Contact(datetime.now(UTC), None)


def test_site_health_rule() -> None:
    assert site_row(_site(), REACHED, _lag(0, 0.0, 1), "k1").colour == "green"
    assert site_row(_site(), REACHED, _lag(2, BEHIND_AFTER_S / 2, 1), "k1").colour == "green"
    behind = site_row(_site(), REACHED, _lag(2, BEHIND_AFTER_S + 1, 1), "k1")
    assert (behind.health, behind.colour) == ("behind", "red")
    quiet = site_row(_site(), REACHED, _lag(0, 0.0, QUIET_AFTER_S + 1), "k1")
    assert quiet.health.startswith("cut off")  # long before the log's 75 s of silence
    assert quiet.colour == "red"
    assert site_row(_site(), REACHED, _lag(0, 0.0, 1, "k0"), "k1").colour == "amber"
    assert site_row(_site(), REACHED, None, "k1").health == "not following"
    # A tenant (no replica report) sees what the control plane sees.
    assert site_row(_site(), REACHED, None, None).health == "ok"
    own = site_row(_site("own"), REACHED, None, "k1")
    assert (own.health, own.colour, own.last_contact) == ("ok", "green", REACHED.reached_at)
    assert site_row(_site("own"), NO_CONTACT, None, "k1").colour == "grey"
    cut = site_row(
        _site(), Contact(None, "site site-a: list servers failed: refused"), _lag(0, 0, 1), "k1"
    )
    assert (cut.health, cut.colour) == ("unreachable", "red")
    assert "refused" in (cut.reason or "")
    assert cut.last_poll is not None  # its replica's columns are still shown


def _pass(
    pass_id: str, minutes_ago: int, failing: list[str], status: str = "succeeded"
) -> ConvergencePassOut:
    began = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    repairs = [
        {"resource": {"type": "site", "id": site}, "site": site, "drift": f"{site} down",
         "action": "none: retried next pass"}
        for site in failing
    ]  # fmt: skip
    return ConvergencePassOut.model_validate(
        {"id": pass_id, "scheduled_for": began, "executor_id": "w", "status": status,
         "checked": 1, "repairs": repairs, "error": None, "started_at": began,
         "finished_at": began + timedelta(seconds=5)}
    )  # fmt: skip


def test_last_contact_is_the_newest_pass_that_reached_the_site() -> None:
    passes = [  # newest first
        _pass("p4", 1, ["s1"]),
        _pass("p3", 2, [], status="failed"),  # stopped early: says nothing
        _pass("p2", 3, ["s1"]),
        _pass("p1", 4, []),
        _pass("p0", 120, []),  # before s2 was registered
    ]
    found = contacts(passes, [_site(), _site("own", "s2")])
    assert found["s1"] == Contact(passes[3].finished_at, "s1 down")
    assert found["s2"] == Contact(passes[0].finished_at, None)
    back = contacts([_pass("p5", 0, []), *passes], [_site()])["s1"]
    assert back.failure is None  # reached again: green at the next pass
    assert contacts([], [_site()])["s1"] == NO_CONTACT


def test_the_sites_page_shows_what_the_last_convergence_pass_reached(
    client: TestClient, services: Services, admin_token: str
) -> None:
    tenant = make_tenant(client, admin_token, "reader")
    seeded = seed_world(services, tenant.project_id, 1)
    with services.db.session() as session:
        sites = {site.name: site for site in session.scalars(select(Site))}
        down, up = (name for name in sorted(sites) if name.startswith(seeded.tag))
        began = datetime.now(UTC) + timedelta(seconds=1)  # after the sites were registered
        failure = repair("site", sites[down].id, down, f"site {down}: list servers failed", "none")
        session.add(
            ConvergencePass(id=f"pass-{seeded.tag}", scheduled_for=began, executor_id="w",
                            status="succeeded", checked=2, repairs=[failure], started_at=began,
                            finished_at=began + timedelta(seconds=2))
        )  # fmt: skip
    ui_login(client, f"{tenant.name}-reader", "pw-" + tenant.name, tenant.name)
    panel = client.get("/ui/sites/panel").text
    row = re.compile(r'<tr id="site-([^"]+)" class="(\w+)" data-health="([^"]+)"')
    health = {name: (colour, said) for name, colour, said in row.findall(panel)}
    assert health[down] == ("red", "unreachable")
    assert health[up] == ("green", "ok")  # its own identity: the pass reached it
    assert "list servers failed" in panel
    assert "s ago" in panel  # the last contact of the site reached
