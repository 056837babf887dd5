"""``cascade demo``: a guided tour of what Cascade does today, on an embedded Cascade.

Each later capability adds its step here.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from cascade.cli import demo_engine, demo_identity
from cascade.cli.demo_engine import expect
from cascade.cli.embedded import EmbeddedCascade, EmbeddedSite
from cascade.errors import CascadeError
from cascade.identity.render import password_auth

console = Console()

DEMO_SITES = (("site-a", "RegionA"), ("site-b", "RegionB"))


class Tour:
    def __init__(self) -> None:
        self.timings: list[tuple[str, float]] = []

    def step(self, title: str, action: Callable[[], Any]) -> Any:
        console.rule(f"[bold]{title}")
        started = time.perf_counter()
        result = action()
        self.timings.append((title, time.perf_counter() - started))
        return result


def _login(client: httpx.Client, password: str) -> str:
    body = password_auth("admin", password, "admin")
    response = client.post("/identity/v3/auth/tokens", json=body)
    if response.status_code == 401:
        raise CascadeError("admin login refused: set CASCADE_ADMIN_PASSWORD to this data dir's")
    token_body = expect(response, 201)["token"]
    console.print(
        f"logged in as [bold]{token_body['user']['name']}[/bold] on project "
        f"[bold]{token_body['project']['name']}[/bold], roles "
        f"{', '.join(r['name'] for r in token_body['roles'])}, "
        f"token expires {token_body['expires_at']}"
    )
    return str(response.headers["X-Subject-Token"])


def _start_sites(data_dir: Path, password: str, stack: ExitStack) -> list[EmbeddedSite]:
    backups = data_dir / "sites" / "backup-store"
    sites = []
    for name, region in DEMO_SITES:
        site = EmbeddedSite(
            name,
            data_dir / "sites" / name,
            password,
            args=["--build-seconds", "0.5", "--backup-dir", str(backups)],
            region=region,
        )
        stack.enter_context(site)
        console.print(f"site {name} (region {region}) serving {site.url}")
        sites.append(site)
    return sites


def _register_sites(client: httpx.Client, sites: list[EmbeddedSite]) -> None:
    for site in sites:
        name, region = site.site_name, site.region
        spec = {
            "name": name,
            "region_name": region,
            "identity_url": site.auth_url,
            "identity": "replica",
            "credentials": {
                "username": "admin",
                "password": site.admin_password,
                "project_name": "admin",
            },
        }
        response = client.post("/v1/sites", json=spec)
        expect(response, 201, 409)
        console.print(
            f"site {name} in region {region}: "
            f"{'registered' if response.status_code == 201 else 'already registered'}"
        )


def _one_login(token: str, sites: list[EmbeddedSite]) -> None:
    """Each site validates Cascade's token against its own identity copy, without the centre."""
    for site in sites:
        response = httpx.get(
            f"{site.url}/identity/v3/auth/tokens",
            headers={"X-Auth-Token": token, "X-Subject-Token": token},
        )
        body = expect(response, 200)["token"]
        console.print(
            f"{site.site_name} validated Cascade's token locally: user "
            f"{body['user']['name']}, project {body['project']['name']}, roles "
            f"{', '.join(r['name'] for r in body['roles'])}"
        )


def _show_catalog(client: httpx.Client) -> None:
    catalog = expect(client.get("/identity/v3/auth/catalog"), 200)["catalog"]
    table = Table("service", "region", "interface", "url")
    for entry in catalog:
        for endpoint in entry["endpoints"]:
            table.add_row(
                entry["type"], endpoint["region_id"], endpoint["interface"], endpoint["url"]
            )
    console.print(table)


def _bad_token(client: httpx.Client) -> None:
    response = client.get("/v1/sites", headers={"X-Auth-Token": "not-a-token"})
    message = expect(response, 401)["error"]["message"]
    console.print(f"a forged token gets {response.status_code}: {message}")
    response = client.get("/v1/sites", headers={"X-Auth-Token": ""})
    console.print(
        f"no token gets {response.status_code}: {expect(response, 401)['error']['message']}"
    )


def _run(data_dir: Path, keep: bool, port: int | None) -> None:
    password = os.environ.get("CASCADE_ADMIN_PASSWORD") or secrets.token_urlsafe(16)
    tour = Tour()
    with ExitStack() as stack:
        cascade = EmbeddedCascade(data_dir, password, port=port, workers=2)
        tour.step(
            "Bootstrap and start an embedded Cascade with two workers",
            lambda: stack.enter_context(cascade),
        )
        console.print(f"serving {cascade.url} from {data_dir}")
        client = stack.enter_context(httpx.Client(base_url=cascade.url, timeout=30))
        token = tour.step(
            "Log in once (Keystone password method)", lambda: _login(client, password)
        )
        client.headers["X-Auth-Token"] = token
        sites = tour.step(
            "Start two emulated OpenStack regions", lambda: _start_sites(data_dir, password, stack)
        )
        tour.step(
            "Register them: each site's identity becomes a replica of Cascade's",
            lambda: _register_sites(client, sites),
        )
        tour.step("One catalog lists every site as a region", lambda: _show_catalog(client))
        tour.step("One login, every site", lambda: _one_login(token, sites))
        tour.step(
            "Rotate the Fernet keys: promoted only once every site holds them",
            lambda: demo_identity.rotate_keys(data_dir, cascade.url, token, sites),
        )
        tour.step(
            "Cut one site off from the master: it keeps validating, then catches up",
            lambda: demo_identity.cut_one_site_off(data_dir, cascade.url, token, sites),
        )
        tour.step("An image and a network at each site", lambda: demo_engine.prepare_sites(sites))
        tour.step(
            "Two workers share operations over both sites; one is killed mid-way",
            lambda: demo_engine.share_work(client, sites),
        )
        tour.step("Servers across sites, one list", lambda: demo_engine.list_servers(client))
        tour.step("A bad token is refused", lambda: _bad_token(client))
        summary = Table("step", "seconds", title="Cascade demo: summary")
        for title, seconds in tour.timings:
            summary.add_row(title, f"{seconds:.3f}")
        console.print(summary)
        if keep:
            console.print(f"still serving {cascade.url} (admin password: {password}); Ctrl-C stops")
            cascade.wait()


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
