"""Keypairs paged at the site-sim as Nova pages them from microversion 2.35 (sorted by name,
``limit`` and ``marker``, a next link when a page is full, 400 for a bad limit or an unknown
marker), and Cascade's keypair listing (``kinds.paged``) reading every keypair a page at a
time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cascade.replication import kinds
from cascade.replication.keypair_kind import KEYPAIRS, MICROVERSION
from tests.sim.test_compute import NOVA

NAMES = ["k-e", "k-a", "k-d", "k-b", "k-c"]


@dataclass
class SiteCompute:
    """The compute proxy ``kinds.paged`` calls (``get`` with params and a microversion), at the
    in-process site; it records each page asked for."""

    client: TestClient
    headers: dict[str, str]
    asked: list[dict[str, Any]] = field(default_factory=list)

    def get(self, path: str, params: dict[str, Any], microversion: str | None) -> httpx.Response:
        self.asked.append(dict(params))
        version = {"OpenStack-API-Version": f"compute {microversion}"} if microversion else {}
        return self.client.get(f"{NOVA}{path}", params=params, headers={**self.headers, **version})


@dataclass
class SiteConnection:
    compute: SiteCompute


@pytest.fixture
def keypairs(site_client: TestClient, site_headers: dict[str, str]) -> dict[str, str]:
    """``NAMES`` imported at the site (in no order); the headers at microversion 2.35."""
    for name in NAMES:
        made = site_client.post(
            f"{NOVA}/os-keypairs", headers=site_headers, json={"keypair": {"name": name}}
        )
        assert made.status_code == 200, made.text
    return {**site_headers, "OpenStack-API-Version": f"compute {MICROVERSION}"}


def _names(body: dict[str, Any]) -> list[str]:
    return [entry["keypair"]["name"] for entry in body["keypairs"]]


def test_pages_by_name_with_next_links(site_client: TestClient, keypairs: dict[str, str]) -> None:
    url = f"{NOVA}/os-keypairs?limit=2"
    pages = []
    while url:
        body = site_client.get(url, headers=keypairs).json()
        pages.append(_names(body))
        links = [link["href"] for link in body.get("keypairs_links", []) if link["rel"] == "next"]
        url = links[0] if links else ""
    assert pages == [["k-a", "k-b"], ["k-c", "k-d"], ["k-e"]]
    # A full last page links a next page, which is empty (as Nova does).
    full = site_client.get(
        f"{NOVA}/os-keypairs", params={"limit": 1, "marker": "k-d"}, headers=keypairs
    ).json()
    assert _names(full) == ["k-e"]
    assert full["keypairs_links"][0]["rel"] == "next"
    after = site_client.get(
        f"{NOVA}/os-keypairs", params={"marker": "k-e"}, headers=keypairs
    ).json()
    assert after == {"keypairs": []}
    everything = site_client.get(f"{NOVA}/os-keypairs", headers=keypairs).json()
    assert _names(everything) == sorted(NAMES)
    assert "keypairs_links" not in everything


def test_bad_limit_and_unknown_marker_are_400(
    site_client: TestClient, keypairs: dict[str, str]
) -> None:
    for params in ({"limit": "-1"}, {"limit": "two"}, {"marker": "k-z"}):
        answer = site_client.get(f"{NOVA}/os-keypairs", params=params, headers=keypairs)
        assert answer.status_code == 400, (params, answer.text)
        assert "badRequest" in answer.json()


def test_before_2_35_limit_and_marker_are_ignored(
    site_client: TestClient, site_headers: dict[str, str], keypairs: dict[str, str]
) -> None:
    old = site_client.get(
        f"{NOVA}/os-keypairs", params={"limit": 1, "marker": "k-z"}, headers=site_headers
    ).json()
    assert _names(old) == sorted(NAMES)
    assert "keypairs_links" not in old


def test_cascade_listing_reads_every_keypair_in_pages(
    site_client: TestClient, keypairs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kinds, "PAGE", 2)
    compute = SiteCompute(site_client, keypairs)
    found = KEYPAIRS.listing(SiteConnection(compute))  # type: ignore[arg-type]
    assert sorted(found) == sorted(NAMES)
    assert all(f.state["fingerprint"].count(":") == 15 for f in found.values())
    assert compute.asked == [
        {"limit": 2},
        {"limit": 2, "marker": "k-b"},
        {"limit": 2, "marker": "k-d"},
    ]
