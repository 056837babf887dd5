"""``cascade demo``: a guided tour of what Cascade does today, on an embedded Cascade.

Each later capability adds its step here. Every call, to Cascade's identity, its ``/v1`` API
or a site, goes through one keystoneauth1 session logged in once (v3 password).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer
from keystoneauth1 import session as ks_session
from rich.console import Console
from rich.table import Table

from cascade.cli import demo_engine, demo_identity, demo_network, demo_protection
from cascade.cli.clients import SessionClient, login, password_auth_plugin, token
from cascade.cli.embedded import EmbeddedCascade, EmbeddedSite
from cascade.cli.probes import can_make_namespaces, underlay_bridge
from cascade.errors import CascadeError, Unauthorized, present
from cascade.identity.passwords import generated_password

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


def _login(url: str, password: str) -> SessionClient:
    auth = password_auth_plugin(f"{url}/identity/v3", password)
    try:
        session = login(auth)
    except Unauthorized:
        raise CascadeError(
            "admin login refused: set CASCADE_ADMIN_PASSWORD to this data dir's"
        ) from None
    access = auth.get_access(session)
    console.print(
        f"logged in as [bold]{access.username}[/bold] on project "
        f"[bold]{access.project_name}[/bold], roles {', '.join(access.role_names or [])}, "
        f"token expires {present(access.expires, 'the token expiry').isoformat()}"
    )
    return SessionClient(session, url)


def _start_sites(
    data_dir: Path, password: str, stack: ExitStack, packets: bool
) -> list[EmbeddedSite]:
    """Both regions; with ``packets`` on the Linux dataplane over one underlay."""
    backups = data_dir / "sites" / "backup-store"
    args = ["--build-seconds", "0.5", "--backup-dir", str(backups)]
    if packets:
        underlay = stack.enter_context(underlay_bridge())
        args += ["--hosts", "2", "--dataplane", "linux", "--underlay", underlay]
    sites = []
    for name, region in DEMO_SITES:
        site = EmbeddedSite(name, data_dir / "sites" / name, password, args=args, region=region)
        stack.enter_context(site)
        console.print(f"site {name} (region {region}) serving {site.url}")
        sites.append(site)
    if packets:
        console.print("their compute hosts are network namespaces with real VXLAN between them")
    return sites


def _register_sites(api: SessionClient, sites: list[EmbeddedSite]) -> None:
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
        reply = api.send("POST", "/v1/sites", spec, expect=(201, 409))
        console.print(
            f"site {name} in region {region}: "
            f"{'registered' if reply.status == 201 else 'already registered'}"
        )


def _one_login(api: SessionClient, sites: list[EmbeddedSite]) -> None:
    """Each site validates Cascade's token against its own identity copy, without the centre."""
    for site in sites:
        subject = {"X-Subject-Token": token(api.session)}
        reply = api.at(site.url).send("GET", "/identity/v3/auth/tokens", headers=subject)
        body = reply.json()["token"]
        console.print(
            f"{site.site_name} validated Cascade's token locally: user "
            f"{body['user']['name']}, project {body['project']['name']}, roles "
            f"{', '.join(r['name'] for r in body['roles'])}"
        )


def _show_catalog(api: SessionClient) -> None:
    catalog = api.call("GET", "/identity/v3/auth/catalog")["catalog"]
    table = Table("service", "region", "interface", "url")
    for entry in catalog:
        for endpoint in entry["endpoints"]:
            table.add_row(
                entry["type"], endpoint["region_id"], endpoint["interface"], endpoint["url"]
            )
    console.print(table)


def _bad_token(api: SessionClient) -> None:
    anonymous = SessionClient(ks_session.Session(), api.base_url)  # no login: no token added
    forged = {"X-Auth-Token": "not-a-token"}
    reply = anonymous.send("GET", "/v1/sites", expect=401, headers=forged)
    console.print(f"a forged token gets {reply.status}: {reply.json()['error']['message']}")
    reply = anonymous.send("GET", "/v1/sites", expect=401)
    console.print(f"no token gets {reply.status}: {reply.json()['error']['message']}")


def _run(data_dir: Path, keep: bool, port: int | None) -> None:
    password = os.environ.get("CASCADE_ADMIN_PASSWORD") or generated_password()
    tour = Tour()
    with ExitStack() as stack:
        cascade = EmbeddedCascade(data_dir, password, port=port, workers=2)
        tour.step(
            "Bootstrap and start an embedded Cascade with two workers",
            lambda: stack.enter_context(cascade),
        )
        console.print(f"serving {cascade.url} from {data_dir}")
        api = tour.step(
            "Log in once (Keystone password method)", lambda: _login(cascade.url, password)
        )
        packets = can_make_namespaces()
        sites = tour.step(
            "Start two emulated OpenStack regions",
            lambda: _start_sites(data_dir, password, stack, packets),
        )
        tour.step(
            "Register them: each site's identity becomes a replica of Cascade's",
            lambda: _register_sites(api, sites),
        )
        tour.step("One catalog lists every site as a region", lambda: _show_catalog(api))
        tour.step("One login, every site", lambda: _one_login(api, sites))
        tour.step(
            "Rotate the Fernet keys: promoted only once every site holds them",
            lambda: demo_identity.rotate_keys(data_dir, api, sites),
        )
        tour.step(
            "Cut one site off from the master: it keeps validating, then catches up",
            lambda: demo_identity.cut_one_site_off(data_dir, api, sites),
        )
        tour.step("An image and a network at each site", lambda: demo_engine.prepare_sites(sites))
        tour.step(
            "Two workers share operations over both sites; one is killed mid-way",
            lambda: demo_engine.share_work(api, sites),
        )
        tour.step("Servers across sites, one list", lambda: demo_engine.list_servers(api))
        vms = tour.step(
            "One network stretched over both sites, a VM at each",
            lambda: demo_network.stretch(api, sites, demo_engine.IMAGE_NAME),
        )
        if packets:
            tour.step("A ping across the sites", lambda: demo_network.ping_across(sites, vms))
        tour.step(
            "A service IP moves from the master at site A to the standby at site B",
            lambda: demo_network.move_service_ip(api, sites, vms, packets),
        )
        tour.step(
            "Protect a 2-VM VNF at site A, lose site A, restore it at site B (RPO, RTO)",
            lambda: demo_protection.protect_and_recover(api, sites, demo_engine.IMAGE_NAME),
        )
        tour.step("A bad token is refused", lambda: _bad_token(api))
        summary = Table("step", "seconds", title="Cascade demo: summary")
        for title, seconds in tour.timings:
            summary.add_row(title, f"{seconds:.3f}")
        console.print(summary)
        if keep:
            console.print(
                f"still serving {cascade.url}, the dashboard at {cascade.url}/ui "
                f"(user admin, password {password}, project admin); Ctrl-C stops"
            )
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
