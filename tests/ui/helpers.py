"""Driving the dashboard from a TestClient: logging in through the form, switching the
session cookie between users, reading a page's CSRF token."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)


def ui_login(client: TestClient, user: str, password: str, project: str | None) -> str:
    """Log in through the form; the session cookie stays in the client. Returns the token."""
    client.cookies.clear()
    form = client.get("/ui/login")
    assert form.status_code == 200
    fields = {"user": user, "password": password, "csrf": csrf_of(form.text)}
    if project is not None:
        fields["project"] = project
    answer = client.post("/ui/login", data=fields, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    token = answer.cookies.get("cascade_session")
    assert token
    return str(token)


def as_session(client: TestClient, token: str) -> None:
    """Make the client the holder of another session's cookie."""
    client.cookies.clear()
    client.cookies.set("cascade_session", token, domain="testserver.local", path="/ui")
