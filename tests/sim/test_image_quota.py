"""Glance's per-project image storage quota at the site-sim: bytes beyond it are refused with
413 and Glance's text, for an upload (declared or streamed), a ``web-download`` import and a
``glance-direct`` import, leaving the image as Glance does; the site's admin changes the limit
at run time through ``/sim/v1/image-quota``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cascade_sim.app import create_region_app
from tests.conftest import login
from tests.sim.conftest import SITE_ADMIN_PASSWORD, make_site, upload_image
from tests.sim.test_image_transfer import IMAGES, Site
from tests.sim.test_objects import account_of

MIB = 1 << 20
QUOTA = "/sim/v1/image-quota"
GLANCE_TEXT = "Denying attempt to upload image because it exceeds the quota"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    region = make_site(tmp_path / "site-q", image_quota_mib=1)
    with TestClient(create_region_app(region), base_url=region.config.base_url) as client:
        token = login(client, "admin", SITE_ADMIN_PASSWORD, "admin")
        yield Site(region, client, {"X-Auth-Token": token})


def _upload(site: Site, image_id: str, data: bytes | Iterator[bytes]) -> tuple[int, str]:
    headers = {**site.headers, "Content-Type": "application/octet-stream"}
    answer = site.client.put(f"{IMAGES}/{image_id}/file", content=data, headers=headers)
    return answer.status_code, answer.text


def _set_quota(site: Site, mib: int | None) -> None:
    answer = site.client.put(QUOTA, headers=site.headers, json={"image_size_total_mib": mib})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"image_size_total_mib": mib}


def test_an_upload_beyond_the_quota_is_refused_413(site: Site) -> None:
    upload_image(site.client, site.headers, os.urandom(600 * 1024))  # within the MiB
    shown = site.client.get(QUOTA, headers=site.headers).json()
    assert shown["image_size_total_mib"] == 1
    assert list(shown["usage_bytes"].values()) == [600 * 1024]
    declared = site.new_image()
    status, text = _upload(site, declared, os.urandom(600 * 1024))
    assert status == 413, text
    assert GLANCE_TEXT in text
    assert f"{MIB - 600 * 1024} bytes remaining" in text
    image = site.image(declared)
    assert (image["status"], image["size"], image["checksum"]) == ("queued", None, None)
    streamed = site.new_image()  # no Content-Length: refused once the bytes pass the room
    status, text = _upload(site, streamed, iter([os.urandom(300 * 1024)] * 2))
    assert status == 413, text
    assert GLANCE_TEXT in text
    assert site.image(streamed)["status"] == "queued"
    leftovers = sorted(p.name for p in (site.region.config.data_dir / "images").iterdir())
    assert not [name for name in leftovers if name.startswith((declared, streamed))]
    _set_quota(site, 2)  # raised at run time: the same upload now fits
    assert _upload(site, declared, os.urandom(600 * 1024))[0] == 204
    assert site.image(declared)["status"] == "active"


def test_a_web_download_import_beyond_the_quota_fails_and_leaves_the_image_queued(
    site: Site,
) -> None:
    account = account_of(site.client, site.headers)
    site.put(f"{account}/staging", b"")
    data = os.urandom(MIB + 1)
    site.put(f"{account}/staging/big", data)
    image_id = site.new_image()
    uri = f"{site.region.config.base_url}{account}/staging/big"
    status, message = site.web_download(image_id, uri)
    assert status == 413
    assert message.startswith(GLANCE_TEXT)
    assert f"The size of the data {MIB + 1} will exceed the limit" in message
    assert site.image(image_id)["status"] == "queued"
    _set_quota(site, None)
    assert site.web_download(image_id, uri) == (202, "")
    assert (site.image(image_id)["status"], site.image(image_id)["size"]) == ("active", MIB + 1)


def test_a_glance_direct_import_beyond_the_quota_is_refused_and_stays_staged(
    site: Site,
) -> None:
    image_id = site.new_image()
    headers = {**site.headers, "Content-Type": "application/octet-stream"}
    staged = site.client.put(
        f"{IMAGES}/{image_id}/stage", content=os.urandom(2 * MIB), headers=headers
    )
    assert staged.status_code == 204, staged.text  # staging is not counted
    body = {"method": {"name": "glance-direct"}}
    refused = site.client.post(f"{IMAGES}/{image_id}/import", headers=site.headers, json=body)
    assert refused.status_code == 413
    assert GLANCE_TEXT in refused.json()["error"]["message"]
    assert site.image(image_id)["status"] == "uploading"
    _set_quota(site, 3)
    done = site.client.post(f"{IMAGES}/{image_id}/import", headers=site.headers, json=body)
    assert done.status_code == 202, done.text
    assert site.image(image_id)["status"] == "active"


def test_only_the_sites_admin_sets_the_quota_and_bad_values_are_4xx(site: Site) -> None:
    bad = site.client.put(QUOTA, headers=site.headers, json={"image_size_total_mib": -1})
    assert bad.status_code == 400
    assert "image_size_total_mib" in bad.text
    unknown = site.client.put(QUOTA, headers=site.headers, json={"mib": 3})
    assert unknown.status_code == 400
    assert site.client.put(QUOTA, json={"image_size_total_mib": 5}).status_code == 401
    assert site.client.get(QUOTA, headers=site.headers).json()["image_size_total_mib"] == 1
