"""The dashboard over Cascade's identity: the session cookie, CSRF, logout revoking the token,
the role rule (a reader sees, a member acts) and tenant isolation, with the in-process app."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ADMIN_PASSWORD, make_tenant
from tests.ui.helpers import as_session, csrf_of, ui_login


def test_login_sets_an_httponly_samesite_strict_cookie_holding_a_cascade_token(
    client: TestClient,
) -> None:
    form = client.get("/ui/login")
    login_cookie = form.headers["set-cookie"].lower()
    assert "httponly" in login_cookie
    assert "samesite=strict" in login_cookie
    answer = client.post(
        "/ui/login",
        data={
            "user": "admin",
            "password": ADMIN_PASSWORD,
            "project": "admin",
            "domain": "Default",
            "csrf": csrf_of(form.text),
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/sites"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if "cascade_session=" in c)
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/ui" in cookie
    token = answer.cookies["cascade_session"]
    api = client.get("/v1/sites", headers={"X-Auth-Token": token})
    assert api.status_code == 200  # a real Cascade token
    page = client.get("/ui/sites")
    assert page.status_code == 200
    assert "admin @ admin" in page.text
    assert token not in page.text  # the session never appears in a page


def test_wrong_password_shows_the_form_again_and_no_session(client: TestClient) -> None:
    form = client.get("/ui/login")
    answer = client.post(
        "/ui/login",
        data={"user": "admin", "password": "wrong", "project": "admin", "csrf": csrf_of(form.text)},
        follow_redirects=False,
    )
    assert answer.status_code == 401
    assert 'id="login-error"' in answer.text
    assert "cascade_session" not in answer.headers.get("set-cookie", "")


def test_login_without_its_csrf_value_is_refused(client: TestClient) -> None:
    client.get("/ui/login")
    answer = client.post(
        "/ui/login", data={"user": "admin", "password": ADMIN_PASSWORD, "project": "admin"}
    )
    assert answer.status_code == 403


def test_pages_need_a_session(client: TestClient) -> None:
    answer = client.get("/ui/operations", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login"
    fragment = client.get("/ui/operations/rows", headers={"HX-Request": "true"})
    assert fragment.status_code == 401
    assert fragment.headers["HX-Redirect"] == "/ui/login"


def test_logout_revokes_the_token_for_the_api_too(client: TestClient) -> None:
    token = ui_login(client, "admin", ADMIN_PASSWORD, "admin")
    page = client.get("/ui/sites")
    refused = client.post("/ui/logout", data={}, follow_redirects=False)
    assert refused.status_code == 403  # no CSRF token: nothing revoked
    assert client.get("/v1/sites", headers={"X-Auth-Token": token}).status_code == 200
    answer = client.post("/ui/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login"
    assert client.get("/v1/sites", headers={"X-Auth-Token": token}).status_code == 401
    as_session(client, token)  # the old cookie, replayed
    again = client.get("/ui/sites", follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"] == "/ui/login"


def test_a_forged_create_without_the_csrf_token_is_refused(
    client: TestClient, admin_token: str
) -> None:
    member = make_tenant(client, admin_token, "member")
    ui_login(client, f"{member.name}-member", "pw-" + member.name, member.name)
    page = client.get("/ui/operations")
    assert 'id="server-create"' in page.text  # a member sees the form
    spec = {"name": "vm", "flavor": "m1.tiny", "image": "cirros"}
    assert client.post("/ui/servers", data=spec).status_code == 403
    assert client.post("/ui/servers", data={**spec, "csrf": "0" * 64}).status_code == 403
    # With the token, the request reaches the server service (no site yet: its own error).
    answer = client.post("/ui/servers", data={**spec, "csrf": csrf_of(page.text)})
    assert answer.status_code not in (403, 500)
    bad = client.post("/ui/servers", data={"name": "vm", "csrf": csrf_of(page.text)})
    assert bad.status_code == 400
    assert "flavor" in bad.text


def test_a_reader_sees_no_action_and_cannot_create(client: TestClient, admin_token: str) -> None:
    reader = make_tenant(client, admin_token, "reader")
    ui_login(client, f"{reader.name}-reader", "pw-" + reader.name, reader.name)
    page = client.get("/ui/operations")
    assert page.status_code == 200
    assert 'id="server-create"' not in page.text
    assert "(read only)" in page.text
    spec = {"name": "vm", "flavor": "m1.tiny", "image": "cirros", "csrf": csrf_of(page.text)}
    answer = client.post("/ui/servers", data=spec)
    assert answer.status_code == 403


def test_a_tenant_never_sees_another_tenants_operations(
    client: TestClient, admin_token: str
) -> None:
    first = make_tenant(client, admin_token)
    second = make_tenant(client, admin_token)
    probe = client.post("/v1/probes", headers=first.headers)
    assert probe.status_code == 202, probe.text
    operation_id = probe.json()["operation"]["id"]

    ui_login(client, f"{first.name}-member", "pw-" + first.name, first.name)
    assert operation_id in client.get("/ui/operations").text
    assert client.get(f"/ui/operations/{operation_id}").status_code == 200

    ui_login(client, f"{second.name}-member", "pw-" + second.name, second.name)
    assert operation_id not in client.get("/ui/operations").text
    assert operation_id not in client.get("/ui/operations/rows?kind=probe").text
    assert client.get(f"/ui/operations/{operation_id}").status_code == 404


@pytest.mark.parametrize("status", ["queued", "bogus"])
def test_operation_filters(client: TestClient, admin_token: str, status: str) -> None:
    client.post("/v1/probes", headers={"X-Auth-Token": admin_token})
    ui_login(client, "admin", ADMIN_PASSWORD, "admin")
    answer = client.get(f"/ui/operations?status={status}&kind=probe")
    if status == "bogus":
        assert answer.status_code == 400
        assert "Unknown status" in answer.text
    else:
        assert answer.status_code == 200
        assert "probe" in answer.text


def test_htmx_is_served_by_cascade(client: TestClient) -> None:
    script = client.get("/ui/static/htmx.min.js")
    assert script.status_code == 200
    assert script.text.startswith("var htmx=")
    assert client.get("/ui/static/nothing.js").status_code == 404
    login = client.get("/ui/login")
    assert "default-src 'self'" in login.headers["content-security-policy"]
    assert login.headers["x-frame-options"] == "DENY"
    page = login.text
    assert 'src="/ui/static/htmx.min.js"' in page
    assert "//" not in page.split("<script")[1][:40]
