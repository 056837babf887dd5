"""The operations list pages by keyset (accepted time, then id): following the "Older" link
from the newest page visits every operation once, in order, with the filters and page size
kept, even when many were accepted in the same microsecond; a forged cursor is a 400."""

from __future__ import annotations

import re
from html import unescape

from fastapi.testclient import TestClient

from cascade.services import Services
from tests.conftest import ADMIN_PASSWORD
from tests.ui.helpers import ui_login
from tests.ui.test_scale import project_of, seed

ROW = re.compile(r'<tr id="op-([0-9a-f]+)"')
OLDER = re.compile(r'<a id="older" href="([^"]+)"')


def test_older_pages_visit_every_operation_once_with_the_filters_kept(
    client: TestClient, services: Services, admin_token: str
) -> None:
    ui_login(client, "admin", ADMIN_PASSWORD, "admin")
    seed(services, 120, range(0), project_of(client, admin_token))  # one timestamp for all
    probe = client.post("/v1/probes", headers={"X-Auth-Token": admin_token})  # kind engine.probe
    assert probe.status_code == 202, probe.text
    seen: list[str] = []
    path: str | None = "/ui/operations?kind=probe&limit=40"
    pages = 0
    while path is not None:
        answer = client.get(path)
        assert answer.status_code == 200, answer.text
        seen += ROW.findall(answer.text)
        older = OLDER.search(answer.text)
        path = unescape(older.group(1)) if older else None
        if path is not None:
            assert "kind=probe" in path
            assert "limit=40" in path
        pages += 1
    assert (pages, len(seen), len(set(seen))) == (3, 120, 120)  # 40 each; the probe filtered out
    assert probe.json()["operation"]["id"] not in seen
    assert seen == sorted(seen, reverse=True)  # all at one time: by id, newest first
    unfiltered = client.get("/ui/operations?limit=40").text
    assert ROW.findall(unfiltered)[0] == probe.json()["operation"]["id"]  # newest first
    first_rows = client.get("/ui/operations/rows?kind=probe&limit=40")
    assert ROW.findall(first_rows.text) == seen[:40]
    assert client.get("/ui/operations?kind=server.create").text.count('id="older"') == 0


def test_a_forged_cursor_is_refused(client: TestClient, admin_token: str) -> None:
    ui_login(client, "admin", ADMIN_PASSWORD, "admin")
    for cursor in ("yesterday", "1-XYZ", "9" * 18 + "-ab", "-ab"):
        answer = client.get(f"/ui/operations?before={cursor}")
        assert answer.status_code in (400, 422), cursor
    assert "Invalid cursor" in client.get("/ui/operations?before=x-1").text
