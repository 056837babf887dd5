"""The emulated Glance: version discovery, real bytes in and out with their checksums, the
glance-direct import, JSON patch, visibility between projects, protected images, list
queries, and bad input answered in Glance's error shape."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cascade_sim import image as glance
from cascade_sim.region import Region
from tests.conftest import Tenant, make_tenant
from tests.sim.conftest import upload_image

IMAGES = "/image/v2/images"
PATCH = "application/openstack-images-v2.1-json-patch"
Headers = dict[str, str]


def create(client: TestClient, headers: Headers, **body: Any) -> dict[str, Any]:
    body = {"disk_format": "raw", "container_format": "bare", **body}
    response = client.post(IMAGES, headers=headers, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def upload(client: TestClient, headers: Headers, image_id: str, data: bytes) -> Any:
    octets = {**headers, "Content-Type": "application/octet-stream"}
    return client.put(f"{IMAGES}/{image_id}/file", headers=octets, content=data)


def patch(client: TestClient, headers: Headers, image_id: str, operations: Any) -> Any:
    return client.patch(
        f"{IMAGES}/{image_id}", headers={**headers, "Content-Type": PATCH}, json=operations
    )


def glance_error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status
    assert error["title"]
    return str(error["message"])


@pytest.fixture
def member(site_client: TestClient, site_token: str) -> Tenant:
    return make_tenant(site_client, site_token)


def test_versions_and_import_methods(site_client: TestClient, site_headers: Headers) -> None:
    for path in ("/image", "/image/"):
        response = site_client.get(path)
        assert response.status_code == 300
        current = response.json()["versions"][0]
        assert (current["id"], current["status"]) == ("v2.16", "CURRENT")
        assert current["links"][0]["href"].endswith("/image/v2/")
    assert site_client.get("/image/versions").status_code == 200
    info = site_client.get("/image/v2/info/import", headers=site_headers).json()
    assert info["import-methods"]["value"] == ["glance-direct", "web-download"]


def test_upload_and_download_real_bytes(
    site: Region, site_client: TestClient, site_headers: Headers
) -> None:
    created = site_client.post(
        IMAGES,
        headers=site_headers,
        json={"name": "cirros", "disk_format": "qcow2", "container_format": "bare"},
    )
    assert created.status_code == 201
    assert created.headers["OpenStack-image-import-methods"] == "glance-direct,web-download"
    image = created.json()
    assert (image["status"], image["visibility"], image["size"]) == ("queued", "shared", None)
    assert image["file"] == f"/v2/images/{image['id']}/file"
    assert site_client.get(f"{IMAGES}/{image['id']}/file", headers=site_headers).status_code == 204
    assert glance.image_file(site, image["id"]) is None

    data = os.urandom(3 * 1024 * 1024 + 17)
    assert upload(site_client, site_headers, image["id"], data).status_code == 204
    shown = site_client.get(f"{IMAGES}/{image['id']}", headers=site_headers).json()
    assert shown["status"] == "active"
    assert shown["size"] == len(data)
    assert shown["checksum"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert shown["os_hash_algo"] == "sha512"
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    downloaded = site_client.get(f"{IMAGES}/{image['id']}/file", headers=site_headers)
    assert downloaded.content == data
    assert downloaded.headers["Content-MD5"] == shown["checksum"]
    path = glance.image_file(site, image["id"])
    assert path == site.config.data_dir / "images" / image["id"]
    assert path.read_bytes() == data
    assert glance.get_image(site, image["id"]) == shown
    assert glance.get_image(site, "missing") is None
    assert glance.image_file(site, "../../missing") is None
    again = upload(site_client, site_headers, image["id"], b"more")
    glance_error(again, 409)


def test_glance_direct_import(site_client: TestClient, site_headers: Headers) -> None:
    image = create(site_client, site_headers, name="imported")
    glance_direct = {"method": {"name": "glance-direct"}}
    early = site_client.post(
        f"{IMAGES}/{image['id']}/import", headers=site_headers, json=glance_direct
    )
    glance_error(early, 409)
    data = b"staged-bytes" * 1000
    staged = site_client.put(
        f"{IMAGES}/{image['id']}/stage",
        headers={**site_headers, "Content-Type": "application/octet-stream"},
        content=data,
    )
    assert staged.status_code == 204
    shown = site_client.get(f"{IMAGES}/{image['id']}", headers=site_headers).json()
    assert shown["status"] == "uploading"
    web = {"method": {"name": "web-download", "uri": "http://example.com/x"}}
    glance_error(
        site_client.post(f"{IMAGES}/{image['id']}/import", headers=site_headers, json=web), 400
    )
    done = site_client.post(
        f"{IMAGES}/{image['id']}/import", headers=site_headers, json=glance_direct
    )
    assert done.status_code == 202
    shown = site_client.get(f"{IMAGES}/{image['id']}", headers=site_headers).json()
    assert shown["status"] == "active"
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert site_client.get(f"{IMAGES}/{image['id']}/file", headers=site_headers).content == data


def test_json_patch(site_client: TestClient, site_headers: Headers) -> None:
    image = create(site_client, site_headers, name="before", os_distro="cirros", tags=["a"])
    assert image["os_distro"] == "cirros"
    changed = patch(
        site_client,
        site_headers,
        image["id"],
        [
            {"op": "replace", "path": "/name", "value": "after"},
            {"op": "add", "path": "/hw_disk_bus", "value": "scsi"},
            {"op": "replace", "path": "/tags", "value": ["a", "b", "a"]},
            {"op": "remove", "path": "/os_distro"},
            {"op": "replace", "path": "/min_ram", "value": 512},
        ],
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["name"], body["hw_disk_bus"], body["tags"], body["min_ram"]) == (
        "after",
        "scsi",
        ["a", "b"],
        512,
    )
    assert "os_distro" not in body
    failures = [
        ([{"op": "replace", "path": "/missing", "value": "x"}], 409),
        ([{"op": "remove", "path": "/missing"}], 409),
        ([{"op": "remove", "path": "/name"}], 403),
        ([{"op": "replace", "path": "/status", "value": "active"}], 403),
        ([{"op": "add", "path": "/os_glance_import_task", "value": "x"}], 403),
        ([{"op": "add", "path": "/_project_id", "value": "x"}], 403),
        ([{"op": "replace", "path": "/owner", "value": "someone"}], 200),
        ([{"op": "replace", "path": "/min_ram", "value": -1}], 400),
        ([{"op": "add", "path": "/count", "value": 3}], 400),
        ([{"op": "move", "path": "/name", "from": "/x"}], 400),
        ([{"op": "add", "path": "/name"}], 400),
        ([{"op": "add", "path": "name", "value": "x"}], 400),
        ([{"op": "add", "path": "/a/b", "value": "x"}], 400),
        ({"op": "add"}, 400),
        (["nonsense"], 400),
    ]
    for operations, status in failures:
        response = patch(site_client, site_headers, image["id"], operations)
        assert response.status_code == status, (operations, response.text)
    wrong_type = site_client.patch(
        f"{IMAGES}/{image['id']}", headers=site_headers, json=[{"op": "remove", "path": "/x"}]
    )
    glance_error(wrong_type, 415)
    malformed = site_client.patch(
        f"{IMAGES}/{image['id']}", headers={**site_headers, "Content-Type": PATCH}, content=b"[{"
    )
    glance_error(malformed, 400)


def test_visibility_between_projects(
    site_client: TestClient, site_headers: Headers, site_token: str, member: Tenant
) -> None:
    other = make_tenant(site_client, site_token)
    private = create(site_client, member.headers, name="private", visibility="private")
    shared = create(site_client, member.headers, name="shared")
    community = create(site_client, member.headers, name="community", visibility="community")
    glance_error(
        site_client.post(IMAGES, headers=member.headers, json={"visibility": "public"}), 403
    )
    public = create(site_client, site_headers, name="public", visibility="public")

    def listed(headers: Headers, query: str = "") -> set[str]:
        response = site_client.get(f"{IMAGES}{query}", headers=headers)
        assert response.status_code == 200, response.text
        return {image["name"] for image in response.json()["images"]}

    assert listed(member.headers) == {"private", "shared", "community", "public"}
    assert listed(other.headers) == {"public"}
    assert listed(other.headers, "?visibility=community") == {"community"}
    assert listed(other.headers, "?visibility=all") == {"community", "public"}
    assert listed(site_headers) >= {"private", "shared", "community", "public"}
    for hidden in (private, shared):
        glance_error(site_client.get(f"{IMAGES}/{hidden['id']}", headers=other.headers), 404)
    assert site_client.get(f"{IMAGES}/{community['id']}", headers=other.headers).status_code == 200
    glance_error(
        patch(
            site_client,
            other.headers,
            public["id"],
            [{"op": "replace", "path": "/name", "value": "x"}],
        ),
        403,
    )
    glance_error(site_client.delete(f"{IMAGES}/{public['id']}", headers=member.headers), 403)
    glance_error(upload(site_client, other.headers, community["id"], b"x"), 403)
    stolen = patch(
        site_client,
        member.headers,
        shared["id"],
        [{"op": "replace", "path": "/owner", "value": other.project_id}],
    )
    glance_error(stolen, 403)
    given = patch(
        site_client,
        site_headers,
        shared["id"],
        [{"op": "replace", "path": "/owner", "value": other.project_id}],
    )
    assert given.json()["owner"] == other.project_id
    assert "shared" in listed(other.headers)
    assert "shared" not in listed(member.headers)


def test_protected_images_are_not_deleted(
    site: Region, site_client: TestClient, site_headers: Headers
) -> None:
    image = create(site_client, site_headers, name="keep", protected=True)
    upload(site_client, site_headers, image["id"], b"precious")
    glance_error(site_client.delete(f"{IMAGES}/{image['id']}", headers=site_headers), 403)
    patch(
        site_client,
        site_headers,
        image["id"],
        [{"op": "replace", "path": "/protected", "value": False}],
    )
    path = glance.image_file(site, image["id"])
    assert path is not None
    assert site_client.delete(f"{IMAGES}/{image['id']}", headers=site_headers).status_code == 204
    assert not path.exists()
    glance_error(site_client.get(f"{IMAGES}/{image['id']}", headers=site_headers), 404)
    glance_error(site_client.delete(f"{IMAGES}/{image['id']}", headers=site_headers), 404)


def test_list_filters_sorting_and_pages(site_client: TestClient, site_headers: Headers) -> None:
    for index in range(5):
        create(
            site_client,
            site_headers,
            name=f"img-{index}",
            tags=["even"] if index % 2 == 0 else ["odd"],
            os_distro="ubuntu" if index < 2 else "fedora",
        )
    upload(
        site_client, site_headers, create(site_client, site_headers, name="big")["id"], b"x" * 100
    )
    tagged = f"{IMAGES}/{create(site_client, site_headers, name='tagged')['id']}/tags"
    assert site_client.put(f"{tagged}/gold", headers=site_headers).status_code == 204
    assert site_client.delete(f"{tagged}/silver", headers=site_headers).status_code == 404

    def names(query: str) -> list[str]:
        response = site_client.get(f"{IMAGES}?{query}", headers=site_headers)
        assert response.status_code == 200, response.text
        return [image["name"] for image in response.json()["images"]]

    assert names("name=img-3") == ["img-3"]
    assert sorted(names("tag=even")) == ["img-0", "img-2", "img-4"]
    assert names("tag=gold") == ["tagged"]
    assert sorted(names("os_distro=ubuntu")) == ["img-0", "img-1"]
    assert names("status=active") == ["big"]
    assert names("size_min=50") == ["big"]
    assert names("sort_key=name&sort_dir=asc&tag=odd") == ["img-1", "img-3"]
    assert names("sort=name:desc&tag=even") == ["img-4", "img-2", "img-0"]
    first = site_client.get(f"{IMAGES}?sort_key=name&sort_dir=asc&limit=3", headers=site_headers)
    page = first.json()
    assert [i["name"] for i in page["images"]] == ["big", "img-0", "img-1"]
    assert page["first"].startswith("/v2/images")
    assert page["schema"] == "/v2/schemas/images"
    second = site_client.get(f"/image{page['next']}", headers=site_headers).json()
    assert [i["name"] for i in second["images"]] == ["img-2", "img-3", "img-4"]
    assert "next" in second
    last = site_client.get(f"/image{second['next']}", headers=site_headers).json()
    assert [i["name"] for i in last["images"]] == ["tagged"]
    assert "next" not in last


def test_bad_input_answers_glance_errors(site_client: TestClient, site_headers: Headers) -> None:
    image = create(site_client, site_headers)
    taken = image["id"]
    bad_creates: list[tuple[Any, int]] = [
        ({"visibility": "everyone"}, 400),
        ({"disk_format": "floppy"}, 400),
        ({"min_disk": "big"}, 400),
        ({"protected": "yes"}, 400),
        ({"tags": "a,b"}, 400),
        ({"name": "x" * 256}, 400),
        ({"id": "not-a-uuid"}, 400),
        ({"id": taken}, 409),
        ({"status": "active"}, 403),
        ({"checksum": "0" * 32}, 403),
        ({"os_glance_foo": "x"}, 403),
        (["name"], 400),
    ]
    for body, status in bad_creates:
        glance_error(site_client.post(IMAGES, headers=site_headers, json=body), status)
    for_another = create(site_client, site_headers, owner="another-project")
    assert for_another["owner"] == "another-project"  # an admin may create for another project
    unformatted = site_client.post(IMAGES, headers=site_headers, json={"name": "bare"}).json()
    glance_error(upload(site_client, site_headers, unformatted["id"], b"data"), 400)
    text = site_client.put(
        f"{IMAGES}/{taken}/file",
        headers={**site_headers, "Content-Type": "text/plain"},
        content=b"x",
    )
    glance_error(text, 415)
    glance_error(
        upload(site_client, site_headers, "00000000-0000-0000-0000-000000000000", b"x"), 404
    )
    for query in (
        "limit=-1",
        "limit=x",
        "marker=nope",
        "sort_key=colour",
        "sort_dir=up",
        "visibility=world",
        "size_min=x",
    ):
        glance_error(site_client.get(f"{IMAGES}?{query}", headers=site_headers), 400)
    glance_error(site_client.get(f"{IMAGES}/nope", headers=site_headers), 404)
    glance_error(
        site_client.post(
            f"{IMAGES}/{taken}/import", headers=site_headers, json={"method": "glance-direct"}
        ),
        400,
    )
    glance_error(
        site_client.post(
            IMAGES, headers={**site_headers, "Content-Type": "application/json"}, content=b"{"
        ),
        400,
    )
    assert site_client.get(IMAGES).status_code == 401


def test_id_in_filter(site_client: TestClient, site_headers: dict[str, str]) -> None:
    ids = [upload_image(site_client, site_headers) for _ in range(3)]
    wanted = sorted(ids[:2])
    listed = site_client.get(f"/image/v2/images?id=in:{','.join(wanted)}", headers=site_headers)
    assert listed.status_code == 200, listed.text
    assert sorted(i["id"] for i in listed.json()["images"]) == wanted
    quoted = site_client.get(f'/image/v2/images?id=in:"{ids[2]}"', headers=site_headers)
    assert [i["id"] for i in quoted.json()["images"]] == [ids[2]]
    assert (
        site_client.get("/image/v2/images?id=in:nope", headers=site_headers).json()["images"] == []
    )
