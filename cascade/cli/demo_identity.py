"""The identity part of ``cascade demo``: the master rotates its Fernet keys across both sites
without breaking a token, then one site is cut off from the master (a sim fault on its link):
it keeps validating, a rotation waits for it, and it catches up by itself when the link
returns. Every call goes through the tour's keystoneauth1 session (its admin token), at the
master or at a site."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cascade.cli.clients import SessionClient, rescoped, token
from cascade.cli.embedded import EmbeddedSite
from cascade.cli.ops import operator_services
from cascade.errors import CascadeError
from cascade.identity.rotation import RotationReport

console = Console()
KEYS_KEPT = 6  # the tour rotates three times within seconds: keep every key it made
TOKENS = "/identity/v3/auth/tokens"


def rotate_keys(data_dir: Path, api: SessionClient, sites: list[EmbeddedSite]) -> None:
    """Rotate, then show the token from before and one from after valid at every site."""
    report = _rotate(data_dir, timeout=30)
    if not report.promoted:
        raise CascadeError(f"the rotation was not promoted: {_missing(report)}")
    console.print(
        f"key {report.primary} promoted once {len(report.holding)}/{report.sites} sites held "
        f"key set {report.target[:12]}…"
    )
    fresh = _new_token(api)
    for site in sites:
        for label, candidate in (
            ("the token from before", token(api.session)),
            ("a new token", fresh),
        ):
            _validated(api, site, candidate)
            console.print(f"{site.site_name} validates {label}")


def cut_one_site_off(data_dir: Path, api: SessionClient, sites: list[EmbeddedSite]) -> None:
    connected, cut = sites
    _set_cut(api, cut, True)
    console.print(f"{cut.site_name}'s link to the master is cut")
    doomed = _new_token(api)
    api.send("DELETE", TOKENS, expect=204, headers={"X-Subject-Token": doomed})
    took = _until_refused(api, connected, doomed)
    console.print(
        f"a token revoked at the master is refused at {connected.site_name} in {took:.2f} s"
    )
    _validated(api, cut, token(api.session))
    _validated(api, cut, doomed)
    console.print(
        f"{cut.site_name}, cut off, still validates tokens (and still accepts the revoked one "
        "until it catches up)"
    )
    blocked = _rotate(data_dir, timeout=2)
    console.print(f"a rotation now is not promoted: {_missing(blocked)}")

    _set_cut(api, cut, False)
    took = _until_refused(api, cut, doomed)
    console.print(f"link restored: {cut.site_name} caught up by itself in {took:.2f} s")
    rotate_keys(data_dir, api, sites)


def _rotate(data_dir: Path, timeout: float) -> RotationReport:
    with operator_services(data_dir) as svc:
        return svc.key_rotation(KEYS_KEPT).rotate(timeout)


def _missing(report: RotationReport) -> str:
    table = Table("site", "holds key set", "would refuse")
    for site in report.missing:
        table.add_row(site.name, (site.key_set or "-")[:12], site.refuses)
    console.print(table)
    return ", ".join(site.name for site in report.missing) + " did not get the new keys"


def _new_token(api: SessionClient) -> str:
    """A new token for the same user and project from the master (Keystone's token method)."""
    return rescoped(f"{api.base_url}/identity/v3", token(api.session))


def _validated(api: SessionClient, site: EmbeddedSite, subject: str) -> None:
    api.at(site.url).send("GET", TOKENS, headers={"X-Subject-Token": subject})


def _until_refused(
    api: SessionClient, site: EmbeddedSite, subject: str, timeout: float = 30
) -> float:
    started = time.monotonic()
    at_site = api.at(site.url)
    while time.monotonic() - started < timeout:
        if at_site.request("GET", TOKENS, {"X-Subject-Token": subject}).status != 200:
            return time.monotonic() - started
        time.sleep(0.02)
    raise CascadeError(f"{site.site_name} still accepts a revoked token after {timeout:.0f} s")


def _set_cut(api: SessionClient, site: EmbeddedSite, cut: bool) -> None:
    api.at(site.url).send("PUT", "/sim/v1/faults", {"cut_from_master": cut})
