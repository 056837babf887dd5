"""What a chunked image copy needs of the site: ranged image downloads (206 with
Content-Range, as Glance answers), Swift's Dynamic Large Objects, and Glance's
``web-download`` import limited to the site's own object store."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cascade_sim.app import create_region_app
from cascade_sim.region import Region
from tests.conftest import login
from tests.sim.conftest import SITE_ADMIN_PASSWORD, make_site, upload_image
from tests.sim.test_objects import account_of

IMAGES = "/image/v2/images"
pytestmark = pytest.mark.xdist_group("image-transfer")  # one set of sites for the module
Headers = dict[str, str]


def md5(data: bytes) -> Any:
    return hashlib.md5(data, usedforsecurity=False)


@dataclass
class Site:
    """One site shared by this module's tests (each uses its own containers and images)."""

    region: Region
    client: TestClient
    headers: Headers

    @property
    def account(self) -> str:
        return account_of(self.client, self.headers)

    def put(self, path: str, data: bytes, **headers: str) -> None:
        response = self.client.put(path, content=data, headers={**self.headers, **headers})
        assert response.status_code in (201, 202), response.text

    def new_image(self) -> str:
        body = {"name": "copy", "disk_format": "raw", "container_format": "bare"}
        created = self.client.post(IMAGES, headers=self.headers, json=body)
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    def web_download(self, image_id: str, uri: str) -> tuple[int, str]:
        body = {"method": {"name": "web-download", "uri": uri}}
        answer = self.client.post(f"{IMAGES}/{image_id}/import", headers=self.headers, json=body)
        message = answer.json()["error"]["message"] if answer.status_code >= 400 else ""
        return answer.status_code, message

    def image(self, image_id: str) -> dict[str, object]:
        shown: dict[str, object] = self.client.get(
            f"{IMAGES}/{image_id}", headers=self.headers
        ).json()
        return shown


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    region = make_site(tmp_path_factory.mktemp("transfer") / "site-a")
    with TestClient(create_region_app(region), base_url=region.config.base_url) as client:
        token = login(client, "admin", SITE_ADMIN_PASSWORD, "admin")
        yield Site(region, client, {"X-Auth-Token": token})


def test_image_download_honours_a_range(site: Site) -> None:
    data = os.urandom(5000)
    image_id = upload_image(site.client, site.headers, data)
    url = f"{IMAGES}/{image_id}/file"
    whole = site.client.get(url, headers=site.headers)
    assert whole.status_code == 200
    assert whole.headers["Content-MD5"] == md5(data).hexdigest()
    part = site.client.get(url, headers={**site.headers, "Range": "bytes=1000-2999"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == "bytes 1000-2999/5000"
    assert part.content == data[1000:3000]
    assert "Content-MD5" not in part.headers  # the part's md5 is not the image's checksum
    tail = site.client.get(url, headers={**site.headers, "Range": "bytes=4990-"})
    assert (tail.status_code, tail.content) == (206, data[4990:])
    beyond = site.client.get(url, headers={**site.headers, "Range": "bytes=6000-7000"})
    assert beyond.status_code == 416


def test_dynamic_large_object_reads_its_segments_in_name_order(site: Site) -> None:
    account = site.account
    site.put(f"{account}/segments", b"")
    site.put(f"{account}/manifests", b"")
    parts = {f"big/{n:08d}": os.urandom(3000 + n) for n in (2, 0, 1)}  # uploaded out of order
    for name, data in parts.items():
        site.put(f"{account}/segments/{name}", data)
    site.put(f"{account}/segments/other/00000000", b"not mine")
    site.put(f"{account}/manifests/big", b"", **{"X-Object-Manifest": "segments/big/"})
    expected = b"".join(parts[name] for name in sorted(parts))
    read = site.client.get(f"{account}/manifests/big", headers=site.headers)
    assert read.status_code == 200
    assert read.content == expected
    assert read.headers["X-Object-Manifest"] == "segments/big/"
    etags = "".join(md5(parts[name]).hexdigest() for name in sorted(parts))
    assert read.headers["ETag"] == f'"{md5(etags.encode()).hexdigest()}"'
    head = site.client.head(f"{account}/manifests/big", headers=site.headers)
    assert head.headers["Content-Length"] == str(len(expected))
    bad = site.client.put(
        f"{account}/manifests/worse",
        content=b"",
        headers={**site.headers, "X-Object-Manifest": "no-prefix-slash"},
    )
    assert bad.status_code == 400
    assert "container/prefix" in bad.json()["error"]["message"]


def test_web_download_imports_from_the_sites_own_store(site: Site) -> None:
    info = site.client.get("/image/v2/info/import", headers=site.headers).json()
    assert "web-download" in info["import-methods"]["value"]
    account = site.account
    site.put(f"{account}/staging", b"")
    data = [os.urandom(2 * 1024 * 1024 + 70_000), os.urandom(12_345)]  # the first read in pieces
    for n, piece in enumerate(data):
        site.put(f"{account}/staging/img/seg/{n:08d}", piece)
    site.put(f"{account}/staging/img/all", b"", **{"X-Object-Manifest": "staging/img/seg/"})
    image_id = site.new_image()
    uri = f"{site.region.config.base_url}{account}/staging/img/all"
    assert site.web_download(image_id, uri) == (202, "")
    whole = b"".join(data)
    shown = site.image(image_id)
    assert shown["status"] == "active"
    assert shown["size"] == len(whole)
    assert shown["checksum"] == md5(whole).hexdigest()
    assert shown["os_hash_value"] == hashlib.sha512(whole).hexdigest()
    read = site.client.get(f"{IMAGES}/{image_id}/file", headers=site.headers)
    assert read.content == whole


def test_web_download_refuses_other_uris(site: Site) -> None:
    image_id = site.new_image()
    status, message = site.web_download(image_id, "https://example.com/cirros.img")
    assert status == 400
    assert "this site's object store" in message
    assert "no outbound" in message
    own = site.region.config.base_url
    assert site.web_download(image_id, f"{own}/image/v2/images")[0] == 400
    assert site.web_download(image_id, f"{own}{site.account}/staging")[0] == 400
    missing = site.web_download(image_id, f"{own}{site.account}/staging/nothing-here")
    assert missing[0] == 404
    assert site.image(image_id)["status"] == "queued"  # a failed import leaves it queued
    assert site.web_download(image_id, "")[0] == 400
