"""The Swift-like object store at the site: containers and objects round trip with Swift's
headers and listings, ranges, names with slashes, bad names and isolation between accounts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from cascade_sim.app import create_region_app
from cascade_sim.region import Region
from tests.conftest import login, make_tenant
from tests.sim.conftest import SITE_ADMIN_PASSWORD, make_site

Headers = dict[str, str]


@dataclass
class Store:
    """One site shared by this module's tests (each uses its own containers)."""

    site: Region
    client: TestClient
    token: str

    @property
    def headers(self) -> Headers:
        return {"X-Auth-Token": self.token}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    site = make_site(tmp_path_factory.mktemp("objects") / "site-a")
    with TestClient(create_region_app(site), base_url=site.config.base_url) as client:
        yield Store(site, client, login(client, "admin", SITE_ADMIN_PASSWORD, "admin"))


def account_of(client: TestClient, headers: Headers) -> str:
    """The object-store URL of the token's project, as the catalog gives it."""
    token = client.get(
        "/identity/v3/auth/tokens", headers={**headers, "X-Subject-Token": headers["X-Auth-Token"]}
    ).json()["token"]
    return f"/object-store/v1/AUTH_{token['project']['id']}"


def test_containers_and_objects_round_trip(store: Store) -> None:
    site_client, site_headers, site = store.client, store.headers, store.site
    account = account_of(site_client, site_headers)
    assert site_client.put(f"{account}/photos", headers=site_headers).status_code == 201
    assert site_client.put(f"{account}/photos", headers=site_headers).status_code == 202
    data = b"0123456789" * 1000
    stored = site_client.put(
        f"{account}/photos/2026/cat.jpg",
        content=data,
        headers={**site_headers, "Content-Type": "image/jpeg"},
    )
    assert stored.status_code == 201
    assert stored.headers["ETag"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
    stored_at = site.config.data_dir / "objects" / account.rsplit("AUTH_", 1)[1] / "photos/2026"
    assert (stored_at / "cat.jpg").read_bytes() == data
    site_client.put(f"{account}/photos/2026/dog.txt", content=b"woof", headers=site_headers)
    site_client.put(f"{account}/photos/readme", content=b"", headers=site_headers)

    got = site_client.get(f"{account}/photos/2026/cat.jpg", headers=site_headers)
    assert (got.content, got.headers["Content-Type"]) == (data, "image/jpeg")
    assert got.headers["ETag"] == stored.headers["ETag"]
    part = site_client.get(
        f"{account}/photos/2026/cat.jpg", headers={**site_headers, "Range": "bytes=10-19"}
    )
    assert (part.status_code, part.content) == (206, b"0123456789")
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    head = site_client.head(f"{account}/photos/2026/dog.txt", headers=site_headers)
    assert (head.headers["Content-Length"], head.headers["Content-Type"]) == ("4", "text/plain")
    assert "." in head.headers["X-Timestamp"]

    listing = site_client.get(f"{account}/photos", params={"format": "json"}, headers=site_headers)
    assert listing.headers["X-Container-Object-Count"] == "3"
    assert listing.headers["X-Container-Bytes-Used"] == str(len(data) + 4)
    cat = listing.json()[0]
    assert set(cat) == {"name", "bytes", "hash", "last_modified", "content_type"}
    assert (cat["name"], cat["bytes"], cat["hash"]) == (
        "2026/cat.jpg",
        len(data),
        stored.headers["ETag"],
    )
    rolled = site_client.get(
        f"{account}/photos", params={"format": "json", "delimiter": "/"}, headers=site_headers
    ).json()
    assert [entry.get("subdir", entry.get("name")) for entry in rolled] == ["2026/", "readme"]
    text = site_client.get(f"{account}/photos", params={"prefix": "2026/"}, headers=site_headers)
    assert text.text == "2026/cat.jpg\n2026/dog.txt\n"
    accounts = site_client.get(account, params={"format": "json"}, headers=site_headers)
    assert accounts.headers["X-Account-Container-Count"] == "1"
    assert accounts.json() == [
        {
            "name": "photos",
            "count": 3,
            "bytes": len(data) + 4,
            "last_modified": accounts.json()[0]["last_modified"],
        }
    ]

    assert site_client.delete(f"{account}/photos", headers=site_headers).status_code == 409
    for name in ("2026/cat.jpg", "2026/dog.txt", "readme"):
        assert (
            site_client.delete(f"{account}/photos/{name}", headers=site_headers).status_code == 204
        )
    assert site_client.get(f"{account}/photos/readme", headers=site_headers).status_code == 404
    assert site_client.delete(f"{account}/photos", headers=site_headers).status_code == 204
    assert site_client.get(f"{account}/photos", headers=site_headers).status_code == 404
    assert site_client.get(account, headers=site_headers).status_code == 204  # no containers


def test_bad_names_and_conflicts(store: Store) -> None:
    site_client, site_headers = store.client, store.headers
    account = account_of(site_client, site_headers)
    site_client.put(f"{account}/box", headers=site_headers)
    # dot segments percent-encoded, or the client would resolve them before sending
    for name in ("a/%2E%2E/%2E%2E/escape", "a//b", "%2E/x", "trailing/", "%2E%2E"):
        reply = site_client.put(f"{account}/box/{name}", content=b"x", headers=site_headers)
        assert reply.status_code == 400, (name, reply.text)
        assert "name" in reply.json()["error"]["message"]
    missing = site_client.put(f"{account}/missing/x", content=b"x", headers=site_headers)
    assert missing.status_code == 404
    assert site_client.get(f"{account}/box/nothing", headers=site_headers).status_code == 404
    site_client.put(f"{account}/box/file", content=b"x", headers=site_headers)
    clash = site_client.put(f"{account}/box/file/inside", content=b"x", headers=site_headers)
    assert clash.status_code == 409
    wrong = site_client.put(
        f"{account}/box/sum", content=b"x", headers={**site_headers, "ETag": "0" * 32}
    )
    assert wrong.status_code == 422
    assert site_client.get(f"{account}/box/sum", headers=site_headers).status_code == 404


def test_accounts_are_isolated(store: Store) -> None:
    site_client, site_headers = store.client, store.headers
    admin_account = account_of(site_client, site_headers)
    tenant = make_tenant(site_client, store.token)
    tenant_account = account_of(site_client, tenant.headers)
    assert site_client.put(f"{tenant_account}/mine", headers=tenant.headers).status_code == 201
    site_client.put(f"{tenant_account}/mine/secret", content=b"s", headers=tenant.headers)
    assert site_client.get(admin_account, headers=tenant.headers).status_code == 403
    assert site_client.put(f"{admin_account}/theirs", headers=tenant.headers).status_code == 403
    assert site_client.get(f"{tenant_account}/mine/secret", headers=site_headers).content == b"s"
    assert site_client.get(tenant_account, headers=tenant.headers).text == "mine\n"
    assert site_client.get("/object-store/v1/AUTH_..", headers=site_headers).status_code == 400


def test_info_and_bulk_delete_as_swift_answers_them(store: Store) -> None:
    """``/info`` offers bulk delete; one request deletes the objects and empty containers it
    lists in order, counts the missing ones and reports what it could not delete."""
    client, headers = store.client, store.headers
    info = client.get("/object-store/info")  # no token, as Swift's /info
    assert info.status_code == 200
    assert info.json()["bulk_delete"]["max_deletes_per_request"] == 10000
    account = account_of(client, headers)
    for container in ("bulk-a", "bulk-b", "bulk-empty"):
        assert client.put(f"{account}/{container}", headers=headers).status_code == 201
    for name in ("bulk-a/one", "bulk-a/dir/two three", "bulk-b/kept"):
        assert client.put(f"{account}/{name}", content=b"x", headers=headers).status_code == 201
    body = "\n".join(
        ["/bulk-a/one", "/bulk-a/dir/two%20three", "/bulk-a/never", "/bulk-empty", "/bulk-b"]
    )
    answer = client.post(f"{account}?bulk-delete", content=body, headers=headers)
    assert answer.status_code == 200
    report = answer.json()
    assert (report["Number Deleted"], report["Number Not Found"]) == (3, 1)
    assert report["Response Status"] == "400 Bad Request"
    assert [path for path, _status in report["Errors"]] == ["/bulk-b"]  # not empty
    assert report["Errors"][0][1].startswith("409 ")
    assert client.get(f"{account}/bulk-a", headers=headers).text == ""
    assert client.head(f"{account}/bulk-b/kept", headers=headers).status_code == 200
    assert client.head(f"{account}/bulk-empty", headers=headers).status_code == 404
    again = client.request(
        "DELETE", f"{account}?bulk-delete", content="/bulk-b/kept", headers=headers
    )
    assert again.json()["Number Deleted"] == 1
    refused = client.post(account, content="/bulk-b", headers=headers)
    assert refused.status_code == 405
    assert "bulk-delete" in refused.json()["error"]["message"]
