"""The identity part of ``cascade demo``: the master rotates its Fernet keys across both sites
without breaking a token, then one site is cut off from the master (a sim fault on its link):
it keeps validating, a rotation waits for it, and it catches up by itself when the link
returns."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from cascade.cli.demo_engine import expect
from cascade.cli.embedded import EmbeddedSite
from cascade.cli.ops import operator_services
from cascade.errors import CascadeError
from cascade.identity.rotation import RotationReport

console = Console()
KEYS_KEPT = 6  # the tour rotates three times within seconds: keep every key it made


def rotate_keys(data_dir: Path, master_url: str, token: str, sites: list[EmbeddedSite]) -> None:
    """Rotate, then show the token from before and one from after valid at every site."""
    report = _rotate(data_dir, timeout=30)
    if not report.promoted:
        raise CascadeError(f"the rotation was not promoted: {_missing(report)}")
    console.print(
        f"key {report.primary} promoted once {len(report.holding)}/{report.sites} sites held "
        f"key set {report.target[:12]}…"
    )
    fresh = _login(master_url, token)
    for site in sites:
        for label, candidate in (("the token from before", token), ("a new token", fresh)):
            _validated(site, token, candidate)
            console.print(f"{site.site_name} validates {label}")


def cut_one_site_off(
    data_dir: Path, master_url: str, token: str, sites: list[EmbeddedSite]
) -> None:
    connected, cut = sites
    _set_cut(cut, token, True)
    console.print(f"{cut.site_name}'s link to the master is cut")
    doomed = _login(master_url, token)
    revoked = httpx.delete(
        f"{master_url}/identity/v3/auth/tokens",
        headers={"X-Auth-Token": token, "X-Subject-Token": doomed},
    )
    expect(revoked, 204)
    took = _until_refused(connected, token, doomed)
    console.print(
        f"a token revoked at the master is refused at {connected.site_name} in {took:.2f} s"
    )
    _validated(cut, token, token)
    _validated(cut, token, doomed)
    console.print(
        f"{cut.site_name}, cut off, still validates tokens (and still accepts the revoked one "
        "until it catches up)"
    )
    blocked = _rotate(data_dir, timeout=2)
    console.print(f"a rotation now is not promoted: {_missing(blocked)}")

    _set_cut(cut, token, False)
    took = _until_refused(cut, token, doomed)
    console.print(f"link restored: {cut.site_name} caught up by itself in {took:.2f} s")
    rotate_keys(data_dir, master_url, token, sites)


def _rotate(data_dir: Path, timeout: float) -> RotationReport:
    with operator_services(data_dir) as svc:
        return svc.key_rotation(KEYS_KEPT).rotate(timeout)


def _missing(report: RotationReport) -> str:
    table = Table("site", "holds key set", "would refuse")
    for site in report.missing:
        table.add_row(site.name, (site.key_set or "-")[:12], site.refuses)
    console.print(table)
    return ", ".join(site.name for site in report.missing) + " did not get the new keys"


def _login(master_url: str, token: str) -> str:
    """A new token for the same user and project (Keystone's token method)."""
    body = {
        "auth": {
            "identity": {"methods": ["token"], "token": {"id": token}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
        }
    }
    answer = httpx.post(f"{master_url}/identity/v3/auth/tokens", json=body)
    expect(answer, 201)
    return str(answer.headers["X-Subject-Token"])


def _validated(site: EmbeddedSite, admin: str, token: str) -> None:
    answer = httpx.get(
        f"{site.url}/identity/v3/auth/tokens",
        headers={"X-Auth-Token": admin, "X-Subject-Token": token},
    )
    expect(answer, 200)


def _until_refused(site: EmbeddedSite, admin: str, token: str, timeout: float = 30) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        answer = httpx.get(
            f"{site.url}/identity/v3/auth/tokens",
            headers={"X-Auth-Token": admin, "X-Subject-Token": token},
        )
        if answer.status_code != 200:
            return time.monotonic() - started
        time.sleep(0.02)
    raise CascadeError(f"{site.site_name} still accepts a revoked token after {timeout:.0f} s")


def _set_cut(site: EmbeddedSite, token: str, cut: bool) -> None:
    answer = httpx.put(
        f"{site.url}/sim/v1/faults", json={"cut_from_master": cut}, headers={"X-Auth-Token": token}
    )
    expect(answer, 200)
