"""Nova at the site: flavors, keypairs, hypervisors, microversions, the server lifecycle and
its state machine (409 as Nova answers), quiesce, volume attachments, ports."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from cascade_sim.region import Region
from tests.sim.conftest import upload_image

NOVA = "/compute/v2.1"


def wait_status(
    client: TestClient, headers: dict[str, str], server_id: str, status: str, timeout: float = 5.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        server = client.get(f"{NOVA}/servers/{server_id}", headers=headers).json()["server"]
        if server["status"] == status or time.monotonic() > deadline:
            assert server["status"] == status, server["status"]
            return server
        time.sleep(0.05)


def make_network(client: TestClient, headers: dict[str, str]) -> str:
    net = client.post(
        "/network/v2.0/networks", headers=headers, json={"network": {"name": "n1"}}
    ).json()["network"]
    subnet = client.post(
        "/network/v2.0/subnets",
        headers=headers,
        json={"subnet": {"network_id": net["id"], "cidr": "10.1.0.0/24", "ip_version": 4}},
    )
    assert subnet.status_code == 201, subnet.text
    return str(net["id"])


def boot(client: TestClient, headers: dict[str, str], **extra: Any) -> str:
    spec = {"name": "vm", "flavorRef": "1", "networks": "none", **extra}
    response = client.post(f"{NOVA}/servers", headers=headers, json={"server": spec})
    assert response.status_code == 202, response.text
    return str(response.json()["server"]["id"])


def test_version_documents_and_microversions(
    site_client: TestClient, site_headers: dict[str, str]
) -> None:
    assert site_client.get("/compute/").json()["versions"][0]["id"] == "v2.1"
    assert site_client.get(NOVA).json()["version"]["version"] == "2.96"
    latest = site_client.get(
        f"{NOVA}/flavors/1", headers={**site_headers, "OpenStack-API-Version": "compute latest"}
    )
    assert latest.headers["OpenStack-API-Version"] == "compute 2.96"
    assert "description" in latest.json()["flavor"]
    old = site_client.get(f"{NOVA}/flavors/1", headers=site_headers)
    assert "description" not in old.json()["flavor"]
    too_new = site_client.get(
        f"{NOVA}/flavors", headers={**site_headers, "OpenStack-API-Version": "compute 3.0"}
    )
    assert too_new.status_code == 406
    bad = site_client.get(
        f"{NOVA}/flavors", headers={**site_headers, "OpenStack-API-Version": "compute two"}
    )
    assert bad.status_code == 400
    assert "badRequest" in bad.json()


def test_flavors_keypairs_hypervisors(
    site_client: TestClient, site_headers: dict[str, str], site: Region
) -> None:
    names = {
        f["name"]
        for f in site_client.get(f"{NOVA}/flavors/detail", headers=site_headers).json()["flavors"]
    }
    assert {"m1.tiny", "m1.small"} <= names
    by_name = site_client.get(f"{NOVA}/flavors/m1.tiny", headers=site_headers)
    assert by_name.status_code == 404, "Nova finds a flavor by id only"
    brief = site_client.get(f"{NOVA}/flavors", headers=site_headers).json()["flavors"]
    assert {"id", "name", "links"} <= set(brief[0])
    assert "ram" not in brief[0]
    created = site_client.post(
        f"{NOVA}/os-keypairs", headers=site_headers, json={"keypair": {"name": "k1"}}
    )
    assert created.status_code == 200
    assert created.json()["keypair"]["private_key"].startswith("-----BEGIN OPENSSH")
    again = site_client.post(
        f"{NOVA}/os-keypairs", headers=site_headers, json={"keypair": {"name": "k1"}}
    )
    assert again.status_code == 409
    assert "conflictingRequest" in again.json()
    listed = site_client.get(f"{NOVA}/os-keypairs", headers=site_headers).json()["keypairs"]
    assert [k["keypair"]["name"] for k in listed] == ["k1"]
    assert "private_key" not in listed[0]["keypair"]
    assert site_client.delete(f"{NOVA}/os-keypairs/k1", headers=site_headers).status_code == 202
    hypervisors = site_client.get(f"{NOVA}/os-hypervisors/detail", headers=site_headers).json()[
        "hypervisors"
    ]
    assert [h["host_ip"] for h in hypervisors] == [h.tunnel_ip for h in site.hosts]


def test_server_lifecycle_and_state_machine(
    site_client: TestClient, site_headers: dict[str, str]
) -> None:
    image = upload_image(site_client, site_headers)
    server_id = boot(site_client, site_headers, imageRef=image)
    building = site_client.get(f"{NOVA}/servers/{server_id}", headers=site_headers).json()
    assert building["server"]["status"] == "BUILD"
    assert building["server"]["OS-EXT-STS:task_state"] == "spawning"
    refused = site_client.post(
        f"{NOVA}/servers/{server_id}/action",
        headers=site_headers,
        json={"reboot": {"type": "SOFT"}},
    )
    assert refused.status_code == 409
    assert "vm_state building" in refused.json()["conflictingRequest"]["message"]
    active = wait_status(site_client, site_headers, server_id, "ACTIVE")
    assert active["OS-EXT-SRV-ATTR:host"].startswith("site-a-host-")
    assert active["OS-EXT-STS:power_state"] == 1
    for action, status in (("os-stop", "SHUTOFF"), ("os-start", "ACTIVE"), ("reboot", "ACTIVE")):
        body = {action: {"type": "HARD"} if action == "reboot" else None}
        done = site_client.post(
            f"{NOVA}/servers/{server_id}/action", headers=site_headers, json=body
        )
        assert done.status_code == 202, done.text
        wait_status(site_client, site_headers, server_id, status)
    listed = site_client.get(f"{NOVA}/servers/detail?status=ACTIVE", headers=site_headers).json()[
        "servers"
    ]
    assert [s["id"] for s in listed] == [server_id]
    assert (
        site_client.delete(f"{NOVA}/servers/{server_id}", headers=site_headers).status_code == 204
    )
    assert site_client.get(f"{NOVA}/servers/{server_id}", headers=site_headers).status_code == 404


def test_quiesce_freezes_and_fault_fails_it(
    site_client: TestClient, site_headers: dict[str, str], site: Region
) -> None:
    image = upload_image(site_client, site_headers)
    server_id = boot(site_client, site_headers, imageRef=image, name="db-1")
    wait_status(site_client, site_headers, server_id, "ACTIVE")
    action = f"{NOVA}/servers/{server_id}/action"
    assert site_client.post(action, headers=site_headers, json={"quiesce": None}).status_code == 202
    assert site.state.get("server", server_id)["_frozen"] is True  # type: ignore[index]
    assert site_client.post(action, headers=site_headers, json={"quiesce": None}).status_code == 409
    assert (
        site_client.post(action, headers=site_headers, json={"unquiesce": None}).status_code == 202
    )
    site_client.put("/sim/v1/faults", headers=site_headers, json={"quiesce_failures": ["db-1"]})
    failed = site_client.post(action, headers=site_headers, json={"quiesce": None})
    assert failed.status_code == 409
    assert "injected fault" in failed.json()["conflictingRequest"]["message"]
    site_client.delete("/sim/v1/faults", headers=site_headers)
    assert site_client.post(action, headers=site_headers, json={"quiesce": None}).status_code == 202


def test_ports_volumes_and_boot_from_volume(
    site_client: TestClient, site_headers: dict[str, str]
) -> None:
    image = upload_image(site_client, site_headers)
    network_id = make_network(site_client, site_headers)
    server_id = boot(
        site_client,
        site_headers,
        networks=[{"uuid": network_id}],
        block_device_mapping_v2=[
            {
                "boot_index": 0,
                "uuid": image,
                "source_type": "image",
                "destination_type": "volume",
                "volume_size": 1,
            }
        ],
    )
    server = wait_status(site_client, site_headers, server_id, "ACTIVE")
    assert [a["addr"] for a in server["addresses"]["n1"]] == ["10.1.0.2"]
    boot_volume = server["os-extended-volumes:volumes_attached"][0]["id"]
    shown = site_client.get(f"/volume/v3/volumes/{boot_volume}", headers=site_headers).json()
    assert shown["volume"]["status"] == "in-use"
    data = site_client.post(
        "/volume/v3/volumes", headers=site_headers, json={"volume": {"size": 1, "name": "data"}}
    ).json()["volume"]
    deadline = time.monotonic() + 5
    while (
        site_client.get(f"/volume/v3/volumes/{data['id']}", headers=site_headers).json()["volume"][
            "status"
        ]
        != "available"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    attached = site_client.post(
        f"{NOVA}/servers/{server_id}/os-volume_attachments",
        headers=site_headers,
        json={"volumeAttachment": {"volumeId": data["id"]}},
    )
    assert attached.status_code == 200, attached.text
    assert attached.json()["volumeAttachment"]["device"] == "/dev/vdb"
    twice = site_client.post(
        f"{NOVA}/servers/{server_id}/os-volume_attachments",
        headers=site_headers,
        json={"volumeAttachment": {"volumeId": data["id"]}},
    )
    assert twice.status_code in (400, 409)
    detached = site_client.delete(
        f"{NOVA}/servers/{server_id}/os-volume_attachments/{data['id']}", headers=site_headers
    )
    assert detached.status_code == 202
    assert (
        site_client.delete(f"{NOVA}/servers/{server_id}", headers=site_headers).status_code == 204
    )
    ports = site_client.get(
        f"/network/v2.0/ports?device_id={server_id}", headers=site_headers
    ).json()["ports"]
    assert ports == []


def test_private_flavors_are_listed_only_when_an_admin_asks(
    site_client: TestClient, site_headers: dict[str, str]
) -> None:
    flavor = {
        "name": "hidden",
        "ram": 64,
        "vcpus": 1,
        "disk": 1,
        "os-flavor-access:is_public": False,
    }
    made = site_client.post(f"{NOVA}/flavors", headers=site_headers, json={"flavor": flavor})
    assert made.status_code == 200, made.text

    def names(query: str = "") -> set[str]:
        answer = site_client.get(f"{NOVA}/flavors/detail{query}", headers=site_headers)
        assert answer.status_code == 200, answer.text
        return {f["name"] for f in answer.json()["flavors"]}

    assert "hidden" not in names()
    assert "m1.tiny" in names()
    assert names("?is_public=None") >= {"hidden", "m1.tiny"}
    assert names("?is_public=false") == {"hidden"}
    refused = site_client.get(f"{NOVA}/flavors?is_public=maybe", headers=site_headers)
    assert refused.status_code == 400
    assert "Invalid is_public filter" in refused.text
    assert (
        site_client.get(
            f"{NOVA}/flavors/{made.json()['flavor']['id']}", headers=site_headers
        ).status_code
        == 200
    )


def test_bad_requests_are_nova_errors(
    site_client: TestClient, site_headers: dict[str, str]
) -> None:
    for body in (
        {},
        {"server": {}},
        {"server": {"name": "x"}},
        {"server": {"name": "x", "flavorRef": "nope", "imageRef": "i"}},
        {"server": {"name": "x", "flavorRef": "1"}},
        {"server": {"name": "x", "flavorRef": "1", "imageRef": "missing"}},
    ):
        response = site_client.post(f"{NOVA}/servers", headers=site_headers, json=body)
        assert response.status_code == 400, (body, response.text)
        assert "badRequest" in response.json()
    named = {"server": {"name": "x", "flavorRef": "m1.tiny", "networks": "none"}}
    refused = site_client.post(f"{NOVA}/servers", headers=site_headers, json=named)
    assert refused.status_code == 400  # a flavor's name is no flavorRef, as at Nova
    assert "Flavor m1.tiny could not be found" in refused.text
    missing = site_client.get(f"{NOVA}/servers/nope", headers=site_headers)
    assert missing.status_code == 404
    assert "itemNotFound" in missing.json()
    unknown_action = site_client.post(
        f"{NOVA}/servers/nope/action", headers=site_headers, json={"explode": None}
    )
    assert unknown_action.status_code == 404


def active_server(client: TestClient, headers: dict[str, str]) -> str:
    """An ACTIVE server booted from an image (its root disk is the local /dev/vda)."""
    server_id = boot(client, headers, imageRef=upload_image(client, headers))
    wait_status(client, headers, server_id, "ACTIVE")
    return server_id


def act(client: TestClient, headers: dict[str, str], server_id: str, body: Any) -> int:
    answer = client.post(f"{NOVA}/servers/{server_id}/action", headers=headers, json=body)
    return answer.status_code


def test_actions_follow_novas_vm_state_rules(
    site_client: TestClient, site_headers: dict[str, str]
) -> None:
    server_id = active_server(site_client, site_headers)
    soft, hard = {"reboot": {"type": "SOFT"}}, {"reboot": {"type": "HARD"}}
    assert act(site_client, site_headers, server_id, {"os-start": None}) == 409
    assert act(site_client, site_headers, server_id, {"reboot": {"type": "gentle"}}) == 400
    assert act(site_client, site_headers, server_id, {"os-stop": None}) == 202
    assert act(site_client, site_headers, server_id, {"os-stop": None}) == 409  # task running
    wait_status(site_client, site_headers, server_id, "SHUTOFF")
    refused = site_client.post(
        f"{NOVA}/servers/{server_id}/action", headers=site_headers, json=soft
    )
    assert refused.status_code == 409
    assert "vm_state stopped" in refused.json()["conflictingRequest"]["message"]
    for body in ({"os-stop": None}, {"pause": None}, {"suspend": None}, {"quiesce": None}):
        assert act(site_client, site_headers, server_id, body) == 409, body
    assert act(site_client, site_headers, server_id, hard) == 202  # hard reboot starts it
    wait_status(site_client, site_headers, server_id, "ACTIVE")
    assert act(site_client, site_headers, server_id, {"pause": None}) == 202
    paused = wait_status(site_client, site_headers, server_id, "PAUSED")
    assert paused["OS-EXT-STS:vm_state"] == "paused"
    assert act(site_client, site_headers, server_id, soft) == 409
    assert act(site_client, site_headers, server_id, {"unpause": None}) == 202
    wait_status(site_client, site_headers, server_id, "ACTIVE")
    assert act(site_client, site_headers, server_id, {"suspend": None}) == 202
    wait_status(site_client, site_headers, server_id, "SUSPENDED")
    assert act(site_client, site_headers, server_id, {"resume": None}) == 202
    wait_status(site_client, site_headers, server_id, "ACTIVE")
    assert act(site_client, site_headers, server_id, soft) == 202


def available_volume(client: TestClient, headers: dict[str, str], name: str) -> str:
    made = client.post(
        "/volume/v3/volumes", headers=headers, json={"volume": {"size": 1, "name": name}}
    ).json()["volume"]
    deadline = time.monotonic() + 10
    while (
        client.get(f"/volume/v3/volumes/{made['id']}", headers=headers).json()["volume"]["status"]
        != "available"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return str(made["id"])


def test_attached_devices_follow_the_attachment_order(
    site_client: TestClient, site_headers: dict[str, str]
) -> None:
    server_id = active_server(site_client, site_headers)
    attachments = f"{NOVA}/servers/{server_id}/os-volume_attachments"
    devices = {}
    for name in ("first", "second", "third"):
        volume_id = available_volume(site_client, site_headers, name)
        answer = site_client.post(
            attachments, headers=site_headers, json={"volumeAttachment": {"volumeId": volume_id}}
        )
        assert answer.status_code == 200, answer.text
        devices[name] = (volume_id, answer.json()["volumeAttachment"]["device"])
    assert [device for _id, device in devices.values()] == ["/dev/vdb", "/dev/vdc", "/dev/vdd"]
    listed = site_client.get(attachments, headers=site_headers).json()["volumeAttachments"]
    assert {a["volumeId"]: a["device"] for a in listed} == dict(devices.values())
    second = devices["second"][0]
    assert site_client.delete(f"{attachments}/{second}", headers=site_headers).status_code == 202
    again = site_client.post(
        attachments,
        headers=site_headers,
        json={"volumeAttachment": {"volumeId": available_volume(site_client, site_headers, "4")}},
    )
    assert again.json()["volumeAttachment"]["device"] == "/dev/vdc"  # the freed name


def test_networks_auto_as_nova_does(site_client: TestClient, site_headers: dict[str, str]) -> None:
    image = upload_image(site_client, site_headers)
    spec = {"name": "auto-vm", "flavorRef": "1", "imageRef": image, "networks": "auto"}
    none = site_client.post(f"{NOVA}/servers", headers=site_headers, json={"server": spec})
    assert none.status_code == 400, none.text
    assert "automatically allocate" in none.json()["badRequest"]["message"]
    network_id = make_network(site_client, site_headers)
    server_id = boot(site_client, site_headers, **spec)
    server = wait_status(site_client, site_headers, server_id, "ACTIVE")
    assert [a["addr"] for a in server["addresses"]["n1"]] == ["10.1.0.2"]
    ports = site_client.get(f"/network/v2.0/ports?device_id={server_id}", headers=site_headers)
    assert [p["network_id"] for p in ports.json()["ports"]] == [network_id]
    make_network(site_client, site_headers)
    ambiguous = site_client.post(f"{NOVA}/servers", headers=site_headers, json={"server": spec})
    assert ambiguous.status_code == 409, ambiguous.text
    assert "Multiple possible networks" in ambiguous.json()["conflictingRequest"]["message"]


def test_compute_services(
    site_client: TestClient, site_headers: dict[str, str], site: Region
) -> None:
    latest = {**site_headers, "OpenStack-API-Version": "compute 2.53"}
    services = site_client.get(f"{NOVA}/os-services", headers=latest).json()["services"]
    computes = [s for s in services if s["binary"] == "nova-compute"]
    assert sorted(s["host"] for s in computes) == sorted(h.name for h in site.hosts)
    assert {s["binary"] for s in services} == {"nova-compute", "nova-scheduler", "nova-conductor"}
    assert all(s["state"] == "up" and s["status"] == "enabled" for s in services)
    assert len({s["id"] for s in services}) == len(services)
    host = site.hosts[0].name
    one = site_client.get(f"{NOVA}/os-services?host={host}&binary=nova-compute", headers=latest)
    assert [s["host"] for s in one.json()["services"]] == [host]
    old = site_client.get(f"{NOVA}/os-services", headers=site_headers).json()["services"]
    assert isinstance(old[0]["id"], int)
