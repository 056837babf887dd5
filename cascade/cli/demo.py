"""``cascade demo``: a guided tour of what Cascade does today, on an embedded Cascade.

Each later capability adds its step here.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from cascade.cli.embedded import EmbeddedCascade, password_auth
from cascade.errors import CascadeError

console = Console()

DEMO_SITES = (
    ("site-a", "RegionA", "http://127.0.0.1:5101/identity/v3"),
    ("site-b", "RegionB", "http://127.0.0.1:5102/identity/v3"),
)


class Tour:
    def __init__(self) -> None:
        self.timings: list[tuple[str, float]] = []

    def step(self, title: str, action: Callable[[], Any]) -> Any:
        console.rule(f"[bold]{title}")
        started = time.perf_counter()
        result = action()
        self.timings.append((title, time.perf_counter() - started))
        return result


def _expect(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    if response.status_code not in statuses:
        raise CascadeError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:200]}"
        )
    return response.json() if response.content else {}


def _login(client: httpx.Client, password: str) -> str:
    body = password_auth("admin", password, "admin")
    response = client.post("/identity/v3/auth/tokens", json=body)
    if response.status_code == 401:
        raise CascadeError("admin login refused: set CASCADE_ADMIN_PASSWORD to this data dir's")
    token_body = _expect(response, 201)["token"]
    console.print(
        f"logged in as [bold]{token_body['user']['name']}[/bold] on project "
        f"[bold]{token_body['project']['name']}[/bold], roles "
        f"{', '.join(r['name'] for r in token_body['roles'])}, "
        f"token expires {token_body['expires_at']}"
    )
    return str(response.headers["X-Subject-Token"])


def _register_sites(client: httpx.Client) -> None:
    for name, region, url in DEMO_SITES:
        spec = {
            "name": name,
            "region_name": region,
            "identity_url": url,
            "credentials": {
                "username": "cascade",
                "password": secrets.token_urlsafe(12),
                "project_name": "service",
            },
        }
        response = client.post("/v1/sites", json=spec)
        _expect(response, 201, 409)
        console.print(
            f"site {name} in region {region}: "
            f"{'registered' if response.status_code == 201 else 'already registered'}"
        )


def _show_catalog(client: httpx.Client) -> None:
    catalog = _expect(client.get("/identity/v3/auth/catalog"), 200)["catalog"]
    table = Table("service", "region", "interface", "url")
    for entry in catalog:
        for endpoint in entry["endpoints"]:
            table.add_row(
                entry["type"], endpoint["region_id"], endpoint["interface"], endpoint["url"]
            )
    console.print(table)


def _bad_token(client: httpx.Client) -> None:
    response = client.get("/v1/sites", headers={"X-Auth-Token": "not-a-token"})
    message = _expect(response, 401)["error"]["message"]
    console.print(f"a forged token gets {response.status_code}: {message}")
    response = client.get("/v1/sites", headers={"X-Auth-Token": ""})
    console.print(
        f"no token gets {response.status_code}: {_expect(response, 401)['error']['message']}"
    )


def _run(data_dir: Path, keep: bool, port: int | None) -> None:
    password = os.environ.get("CASCADE_ADMIN_PASSWORD") or secrets.token_urlsafe(16)
    tour = Tour()
    cascade = EmbeddedCascade(data_dir, password, port=port)
    tour.step("Bootstrap and start an embedded Cascade", cascade.start)
    try:
        console.print(f"serving {cascade.url} from {data_dir}")
        with httpx.Client(base_url=cascade.url, timeout=30) as client:
            token = tour.step(
                "Log in once (Keystone password method)", lambda: _login(client, password)
            )
            client.headers["X-Auth-Token"] = token
            tour.step("Register two sites", lambda: _register_sites(client))
            tour.step("One catalog lists every site as a region", lambda: _show_catalog(client))
            tour.step("A bad token is refused", lambda: _bad_token(client))
        summary = Table("step", "seconds", title="Cascade demo: summary")
        for title, seconds in tour.timings:
            summary.add_row(title, f"{seconds:.3f}")
        console.print(summary)
        if keep:
            console.print(f"still serving {cascade.url} (admin password: {password}); Ctrl-C stops")
            cascade.wait()
    finally:
        cascade.stop()


def demo(
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory to use (default: a temporary one)")
    ] = None,
    keep: Annotated[bool, typer.Option(help="Keep serving after the tour")] = False,
    port: Annotated[int | None, typer.Option(help="Port (default: a free one)")] = None,
) -> None:
    """Start an embedded Cascade and walk through what it can do."""
    if data_dir is not None:
        _run(data_dir, keep, port)
        return
    with tempfile.TemporaryDirectory(prefix="cascade-demo-") as temporary:
        _run(Path(temporary), keep, port)
