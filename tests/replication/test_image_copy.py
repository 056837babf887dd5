"""Image copy between real site-sims (each its own process): a 64 MiB image with its metadata
copied to three sites and verified; copies resumed after the copying process was SIGKILLed,
after it stopped itself, and after the target site was killed mid-copy, sending only what
the target had not confirmed; a copy with another chunk size not trusting what was staged;
and the bandwidth limit holding a copy back."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cascade.cli.embedded import EmbeddedSite
from cascade.errors import BadRequest
from cascade.replication.bandwidth import ByteRateLimit
from cascade.replication.image_copy import NOT_COPIED, SOURCE_PROPERTY, CopyResult, copy_image
from cascade.replication.image_staging import STAGING_CONTAINER
from cascade.replication.image_transfer import CHUNK_BYTES
from cascade.sites.driver import SiteCallFailed, SiteDriver
from tests.conftest import ADMIN_PASSWORD
from tests.protection.vnf import sim_admin

MiB = 1 << 20
pytestmark = pytest.mark.xdist_group("image-copy")  # one set of sites for the module
Json = dict[str, Any]
CHILD = """
import json, sys
from cascade.replication.bandwidth import ByteRateLimit
from cascade.replication.image_copy import copy_image
from cascade.sites.driver import SiteAccess, SiteDriver
source, target, image_id, chunk, rate = json.loads(sys.argv[1])
drivers = [SiteDriver(SiteAccess(**access)) for access in (source, target)]
copy_image(*drivers, image_id, chunk_bytes=chunk, limit=ByteRateLimit(rate) if rate else None)
"""


@dataclass
class Sites:
    source: EmbeddedSite
    targets: list[EmbeddedSite]


class Stop(Exception):
    """Raised from a progress callback to stop a copy part-way."""


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    base = tmp_path_factory.mktemp("image-copy")
    started: list[EmbeddedSite] = []
    env = {"CASCADE_PASSWORD_HASH_ROUNDS": "4"}
    try:
        for name in ("source", "target-1", "target-2", "target-3"):
            started.append(EmbeddedSite(name, base / name, ADMIN_PASSWORD, env=env))
            started[-1].start()
        yield Sites(started[0], started[1:])
    finally:
        for site in started:
            site.stop()


def driver(site: EmbeddedSite, deadline: float = 30.0) -> SiteDriver:
    return SiteDriver(site.access(), deadline=deadline)


def make_image(site: EmbeddedSite, data: bytes, **attributes: Any) -> Json:
    body = {"name": "golden", "disk_format": "qcow2", "container_format": "bare", **attributes}

    def upload(c: Any) -> Json:
        image: Json = c.image.post("/images", json=body).json()
        octets = {"Content-Type": "application/octet-stream"}
        stored = c.image.put(f"/images/{image['id']}/file", data=data, headers=octets)
        assert stored.status_code == 204, stored.text
        shown: Json = c.image.get(f"/images/{image['id']}").json()
        return shown

    image: Json = driver(site).call("upload image", upload)
    return image


def show(site: EmbeddedSite, image_id: str) -> Json:
    shown: Json = driver(site).call("show", lambda c: c.image.get(f"/images/{image_id}").json())
    return shown


def staged(site: EmbeddedSite, prefix: str = "") -> list[Json]:
    def listing(c: Any) -> list[Json]:
        answer = c.object_store.get(
            f"/{STAGING_CONTAINER}", params={"format": "json", "prefix": prefix}
        )
        return [] if answer.status_code == 404 else list(answer.json())

    listed: list[Json] = driver(site).call("list staging", listing)
    return listed


def staged_bytes(site: EmbeddedSite, image_id: str) -> int:
    """The bytes of the image's segments the target's store holds."""
    return sum(int(entry["bytes"]) for entry in staged(site, f"{image_id}/segments/"))


def metadata(image: Json) -> Json:
    return {k: v for k, v in image.items() if k not in NOT_COPIED and k != SOURCE_PROPERTY}


def progress_into(calls: list[tuple[int, int]]) -> Callable[[int, int], None]:
    return lambda done, total: calls.append((done, total))


def stopped_at_half(
    source: EmbeddedSite, target: EmbeddedSite, image_id: str, chunk: int
) -> list[int]:
    """Copy until the progress callback sees half the bytes, which then stops the copy; the
    bytes done it was given."""
    reported: list[int] = []

    def stop_at_half(done: int, total: int) -> None:
        reported.append(done)
        if done >= total // 2:
            raise Stop

    with pytest.raises(Stop):
        copy_image(
            driver(source), driver(target), image_id, chunk_bytes=chunk, on_progress=stop_at_half
        )
    return reported


def assert_resumed(result: CopyResult, staged_before: int) -> None:
    """The resumed call sent exactly what the target's store did not hold."""
    assert result.bytes_skipped == staged_before > 0
    assert result.bytes_sent == result.bytes_total - staged_before


def test_a_64_mib_image_with_its_metadata_is_copied_to_three_sites(sites: Sites) -> None:
    data = os.urandom(64 * MiB)
    original = make_image(
        sites.source,
        data,
        visibility="public",
        min_disk=3,
        min_ram=512,
        tags=["golden", "ubuntu"],
        os_distro="ubuntu",
        hw_disk_bus="virtio",
    )
    assert original["os_hash_value"] == hashlib.sha512(data).hexdigest()
    for target in sites.targets:
        progress: list[tuple[int, int]] = []
        result = copy_image(
            driver(sites.source),
            driver(target),
            original["id"],
            on_progress=progress_into(progress),
        )
        sizes = (result.bytes_total, result.bytes_sent, result.bytes_skipped)
        assert sizes == (64 * MiB, 64 * MiB, 0)
        assert progress == [
            (n * CHUNK_BYTES, 64 * MiB) for n in range(1, 64 * MiB // CHUNK_BYTES + 1)
        ]
        copied = show(target, result.target_image_id)
        assert copied["status"] == "active"
        assert metadata(copied) == metadata(original)
        assert copied[SOURCE_PROPERTY] == f"source/{original['id']}"
        assert copied["owner"] != original["owner"]  # the target connection's project
        hashes = (copied["checksum"], copied["os_hash_value"], copied["size"])
        assert hashes == (original["checksum"], original["os_hash_value"], 64 * MiB)
        assert (result.checksum, result.os_hash_value) == hashes[:2]
        assert staged(target) == []  # segments, manifest and ledger are gone
        again = copy_image(driver(sites.source), driver(target), original["id"])
        assert (again.target_image_id, again.bytes_sent) == (result.target_image_id, 0)


def test_a_copy_whose_process_was_sigkilled_resumes_from_the_staged_chunks(
    sites: Sites, tmp_path: Path
) -> None:
    chunk, size = 1 * MiB, 16 * MiB
    original = make_image(sites.source, os.urandom(size))
    target = sites.targets[0]
    accesses = [dataclasses.asdict(s.access()) for s in (sites.source, target)]
    argument = json.dumps([*accesses, original["id"], chunk, 3 * MiB])
    with (tmp_path / "child.log").open("wb") as log:
        child = subprocess.Popen([sys.executable, "-c", CHILD, argument], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while staged_bytes(target, original["id"]) < size // 2:
            assert child.poll() is None, (tmp_path / "child.log").read_text()
            assert time.monotonic() < deadline, "the copy did not stage half the image"
            time.sleep(0.1)
    finally:
        child.kill()
        child.wait()
    before = staged_bytes(target, original["id"])
    assert before < size
    result = copy_image(driver(sites.source), driver(target), original["id"], chunk_bytes=chunk)
    assert_resumed(result, before)
    assert show(target, result.target_image_id)["os_hash_value"] == original["os_hash_value"]


def test_a_copy_stopped_part_way_resumes_and_progress_counts_the_skipped_bytes(
    sites: Sites,
) -> None:
    chunk, size = 1 * MiB, 10 * MiB + 12345
    original = make_image(sites.source, os.urandom(size), name="odd size")
    target = sites.targets[1]
    reported = stopped_at_half(sites.source, target, original["id"], chunk)
    before = staged_bytes(target, original["id"])
    assert reported[-1] <= before < size  # chunks in flight at the stop were finished
    progress: list[int] = []
    result = copy_image(
        driver(sites.source),
        driver(target),
        original["id"],
        chunk_bytes=chunk,
        on_progress=lambda done, _total: progress.append(done),
    )
    assert_resumed(result, before)
    assert progress[: before // chunk] == [n * chunk for n in range(1, before // chunk + 1)]
    steps = [b - a for a, b in zip([0, *progress], progress, strict=False)]
    assert sorted(steps) == [size % chunk] + [chunk] * (size // chunk)  # each chunk once
    assert progress[-1] == size
    assert show(target, result.target_image_id)["checksum"] == original["checksum"]


def test_a_copy_with_another_chunk_size_sends_everything_again(sites: Sites) -> None:
    size = 6 * MiB
    original = make_image(sites.source, os.urandom(size))
    target = sites.targets[1]
    stopped_at_half(sites.source, target, original["id"], MiB)
    assert staged_bytes(target, original["id"]) >= size // 2
    result = copy_image(driver(sites.source), driver(target), original["id"], chunk_bytes=2 * MiB)
    assert (result.bytes_sent, result.bytes_skipped) == (size, 0)
    assert show(target, result.target_image_id)["os_hash_value"] == original["os_hash_value"]
    assert staged(target, f"{original['id']}/") == []


def test_a_target_without_bulk_delete_has_its_staging_removed_object_by_object(
    sites: Sites,
) -> None:
    """A store that offers no bulk delete (its ``/info`` answers 404, as a Swift without
    capabilities would) gets one DELETE per staged object; bulk deletes (POSTs to the
    account) would fail there, so the staging being gone proves they were not used."""
    original = make_image(sites.source, os.urandom(3 * MiB + 5))
    target = sites.targets[2]
    no_bulk = [
        {"method": "GET", "path_prefix": "/object-store/info", "rate": 1.0, "status": 404},
        {"method": "POST", "path_prefix": "/object-store/v1/", "rate": 1.0, "status": 500},
    ]
    sim_admin(target, "PUT", "/faults", route_errors=no_bulk)
    try:
        result = copy_image(driver(sites.source), driver(target), original["id"], chunk_bytes=MiB)
    finally:
        sim_admin(target, "DELETE", "/faults")
    assert result.bytes_sent == 3 * MiB + 5
    assert show(target, result.target_image_id)["os_hash_value"] == original["os_hash_value"]
    assert staged(target, f"{original['id']}/") == []


def test_a_copy_resumes_after_the_target_site_was_killed_mid_copy(sites: Sites) -> None:
    chunk, size = 1 * MiB, 12 * MiB
    original = make_image(sites.source, os.urandom(size))
    target = sites.targets[2]

    def kill_target_at_half(done: int, total: int) -> None:
        if done == total // 2:
            target.kill()

    try:
        with pytest.raises(SiteCallFailed) as failure:
            copy_image(
                driver(sites.source),
                driver(target, deadline=1.0),
                original["id"],
                chunk_bytes=chunk,
                on_progress=kill_target_at_half,
            )
        assert failure.value.site == "target-3"
    finally:
        target.start()
    before = staged_bytes(target, original["id"])
    assert size // 2 <= before < size
    result = copy_image(driver(sites.source), driver(target), original["id"], chunk_bytes=chunk)
    assert_resumed(result, before)
    assert show(target, result.target_image_id)["os_hash_value"] == original["os_hash_value"]


def test_the_bandwidth_limit_holds_the_copy_back(sites: Sites) -> None:
    chunk, size, rate = 256 * 1024, 3 * MiB, 1 * MiB
    original = make_image(sites.source, os.urandom(size))
    started = time.monotonic()
    result = copy_image(
        driver(sites.source),
        driver(sites.targets[0]),
        original["id"],
        chunk_bytes=chunk,
        limit=ByteRateLimit(rate),
    )
    # A lower bound only: the first second's worth may go at once, the rest at the rate.
    assert time.monotonic() - started >= (size - rate - chunk) / rate
    assert result.bytes_sent == size
    with pytest.raises(BadRequest, match="positive"):
        ByteRateLimit(0)
