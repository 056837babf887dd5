"""Every dashboard page renders for the roles that may see it (Cluster and Fabric: admin,
as their routes are), and the site health rule reads a replica's lag as the page says."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from cascade.identity.changelog import ReplicaLag
from cascade.sites.schemas import SiteOut
from cascade.ui.sites_page import BEHIND_AFTER_S, _row
from tests.conftest import ADMIN_PASSWORD, make_tenant
from tests.ui.helpers import ui_login

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


def _site(identity: str = "replica") -> SiteOut:
    now = datetime.now(UTC)
    return SiteOut(
        id="s1", name="site-a", region_name="RegionA", identity_url="http://x/v3",
        username="admin", user_domain_name="Default", project_name="admin",
        project_id="p", identity=identity, created_at=now,
    )  # fmt: skip


def _lag(behind: int, lag_s: float, silent: bool, key_set: str = "k1") -> ReplicaLag:
    return ReplicaLag("site-a", 5, behind, lag_s, datetime.now(UTC), 1.0, silent, key_set)


def test_site_health_rule() -> None:
    assert _row(_site(), _lag(0, 0.0, False), "k1").colour == "green"
    assert _row(_site(), _lag(2, BEHIND_AFTER_S / 2, False), "k1").colour == "green"
    behind = _row(_site(), _lag(2, BEHIND_AFTER_S + 1, False), "k1")
    assert (behind.health, behind.colour) == ("behind", "red")
    assert _row(_site(), _lag(0, 80.0, True), "k1").health.startswith("cut off")
    assert _row(_site(), _lag(0, 0.0, False, "k0"), "k1").colour == "amber"
    assert _row(_site(), None, "k1").health == "not following"
    assert _row(_site(), None, None).health == "admin only"  # the report is admin-only
    assert _row(_site("own"), None, "k1").colour == "grey"
