"""The backup chunk store on its three backends: a directory, a container of a real
``cascade site-sim``'s object store reached through the site driver (openstacksdk), and a
bucket of an S3-compatible server (moto's, a separate process) reached through boto3."""

from __future__ import annotations

import hashlib
import os
import stat
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import blake3
import pytest

from cascade.cli.embedded import EmbeddedSite
from cascade.direct_io import ALIGN, write_direct
from cascade.errors import BadRequest, NotFound
from cascade.protection.chunk_store import (
    ChunkCorrupt,
    ChunkStore,
    DirectoryChunkStore,
    ObjectChunkStore,
    open_store,
)
from cascade.protection.chunks import Chunk, chunk_name, hash_rates, is_zero
from cascade.protection.s3_store import ChunkStoreFailed, S3ChunkStore
from cascade.sites.driver import SiteDriver
from tests.conftest import ADMIN_PASSWORD
from tests.protection.s3_server import S3Server, s3_server

__all__ = ["s3_server"]

PAGE = 2  # names per listing request of the object store, so a few chunks make pages


@dataclass
class Backend:
    """A fresh store and a way to overwrite a chunk's stored bytes behind its back."""

    store: ChunkStore
    overwrite: Callable[[str, bytes], None]


@pytest.fixture(scope="module")
def site_driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteDriver]:
    site = EmbeddedSite(
        "site-a",
        tmp_path_factory.mktemp("chunks") / "site-a",
        ADMIN_PASSWORD,
        args=["--build-seconds", "0.2"],
        env={"CASCADE_PASSWORD_HASH_ROUNDS": "4"},
    )
    with site:
        yield SiteDriver(site.access())


def directory_backend(tmp_path: Path) -> Backend:
    store = DirectoryChunkStore(tmp_path / "chunks")

    def overwrite(name: str, data: bytes) -> None:
        store.path(name).write_bytes(data)

    return Backend(store, overwrite)


def object_backend(driver: SiteDriver) -> Backend:
    container = f"chunks-{uuid.uuid4().hex[:8]}"
    store = ObjectChunkStore(driver, container, page_size=PAGE)

    def overwrite(name: str, data: bytes) -> None:
        driver.connection.object_store.upload_object(container=container, name=name, data=data)

    return Backend(store, overwrite)


def s3_backend(server: S3Server) -> Backend:
    bucket = f"chunks-{uuid.uuid4().hex[:8]}"
    store = S3ChunkStore(server.endpoint, bucket, server.url(bucket), page_size=PAGE)

    def overwrite(name: str, data: bytes) -> None:
        store.client.put_object(Bucket=bucket, Key=name, Body=data)

    return Backend(store, overwrite)


@pytest.fixture(params=["directory", "object", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "directory":
        return directory_backend(tmp_path)
    if request.param == "s3":
        return s3_backend(request.getfixturevalue("s3_server"))
    return object_backend(request.getfixturevalue("site_driver"))


def stored(store: ChunkStore, data: bytes) -> tuple[str, str]:
    """Put ``data``; its name and SHA-256."""
    chunk = Chunk.of(data)
    store.put(chunk)
    return chunk.name, chunk.sha256


def test_round_trip_and_idempotent_put(backend: Backend) -> None:
    store, data = backend.store, b"block " * 10_000
    name = chunk_name(data)
    assert not store.has(name)
    assert list(store.names()) == []  # nothing yet (no container either)
    store.put(Chunk.of(data))
    store.put(Chunk.of(data))
    assert store.has(name)
    assert store.get(name, hashlib.sha256(data).hexdigest()) == data
    assert list(store.names()) == [name]  # twice is one chunk
    empty, empty_sha = stored(store, b"")
    assert store.get(empty, empty_sha) == b""


def test_corrupt_chunk_is_refused_by_name(backend: Backend) -> None:
    store = backend.store
    name, sha = stored(store, b"good bytes")
    other = chunk_name(b"another block")
    with pytest.raises(ChunkCorrupt, match=f"chunk {name} in .*SHA-256 is {sha}, not {other}"):
        store.get(name, other)
    backend.overwrite(name, b"evil bytes")
    evil = chunk_name(b"evil bytes")
    with pytest.raises(
        ChunkCorrupt, match=f"chunk {name} in .*SHA-256 is {evil}, not {sha}"
    ) as bad:
        store.get(name, sha)
    assert bad.value.status == 502
    store.delete(name)
    with pytest.raises(ChunkCorrupt, match=f"chunk {name} in .*missing"):
        store.get(name, sha)


def test_names_lists_every_chunk_across_pages_and_delete(backend: Backend) -> None:
    store = backend.store
    names = {stored(store, f"chunk {i}".encode())[0] for i in range(2 * PAGE + 1)}
    assert sorted(store.names()) == sorted(names)
    gone = sorted(names)[PAGE]  # one from the middle page
    store.delete(gone)
    store.delete(gone)  # missing is fine
    assert not store.has(gone)
    assert sorted(store.names()) == sorted(names - {gone})


def test_a_chunk_carries_the_digests_of_its_bytes_and_zeros_are_no_chunk(
    backend: Backend,
) -> None:
    data = bytes(1000) + b"a"
    chunk = Chunk.of(data)
    digest = hashlib.sha256(data).hexdigest()
    assert (chunk.data, chunk.name, chunk.sha256, chunk_name(data)) == (data, *[digest] * 3)
    assert [is_zero(d) for d in (data, b"a" + bytes(1000), bytes(4 << 20), b"")] == [
        False,
        False,
        True,
        True,
    ]
    with pytest.raises(BadRequest, match="not a chunk name"):
        backend.store.has("../../etc/passwd")
    assert list(backend.store.names()) == []


def test_a_chunk_named_by_blake3_before_2026_12_07_still_reads(backend: Backend) -> None:
    """Checkpoints from before chunks were named by their SHA-256 name them by BLAKE3 and
    keep the SHA-256 beside: read and verified by that SHA-256, they still restore."""
    data = b"an older block" * 100
    legacy = blake3.blake3(data).hexdigest()
    backend.store.put(Chunk(data, legacy))
    assert backend.store.get(legacy, chunk_name(data)) == data
    with pytest.raises(ChunkCorrupt, match=f"chunk {legacy} in .*SHA-256 is"):
        backend.store.get(legacy, legacy)


def test_directory_layout_and_no_temporary_files(tmp_path: Path) -> None:
    store = DirectoryChunkStore(tmp_path / "chunks")
    name, _ = stored(store, b"laid out")
    assert (tmp_path / "chunks" / name[:2] / name[2:]).read_bytes() == b"laid out"
    (tmp_path / "chunks" / name[:2] / ".half-written").write_bytes(b"la")
    assert list(store.names()) == [name]
    assert sorted(p.name for p in (tmp_path / "chunks" / name[:2]).iterdir()) == [
        ".half-written",
        name[2:],
    ]


def test_sync_flushes_the_named_chunks_and_their_directories_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DirectoryChunkStore(tmp_path / "chunks")
    names = [stored(store, data)[0] for data in (os.urandom(4 << 20), b"small", b"other")]
    flushed: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        flushed.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "sync", lambda: pytest.fail("the whole machine flushed"))
    missing = chunk_name(b"never put")
    store.sync([names[0], names[1], missing])
    files = [str(store.path(name)) for name in names[:2]]
    assert flushed[:2] == files  # the third chunk is not named; the missing one is skipped
    assert sorted(flushed[2:]) == sorted({str(Path(f).parent) for f in files})
    with pytest.raises(BadRequest):
        store.sync(["not-a-chunk"])


def test_whole_blocks_are_written_past_the_page_cache_others_through_it(tmp_path: Path) -> None:
    store = DirectoryChunkStore(tmp_path / "chunks")
    block, odd = os.urandom(4 << 20), os.urandom(5000)
    assert not write_direct(tmp_path / "odd", odd)  # not a multiple of ALIGN: nothing written
    assert not (tmp_path / "odd").exists()
    direct = write_direct(tmp_path / "block", block)  # False only where O_DIRECT is refused
    assert (tmp_path / "block").exists() == direct
    for data in (block, odd, block[: 2 * ALIGN]):
        name, sha = stored(store, data)
        assert store.get(name, sha) == data
        assert stat.S_IMODE(store.path(name).stat().st_mode) == 0o600
    assert [p.name for p in (tmp_path / "chunks").rglob(".*")] == []  # no temporary left


def test_open_store_both_forms(tmp_path: Path, site_driver: SiteDriver) -> None:
    def drivers(site: str) -> SiteDriver:
        if site != "site-a":
            raise NotFound(f"site {site} not found")
        return site_driver

    directory = open_store((tmp_path / "my chunks").as_uri(), drivers)
    assert isinstance(directory, DirectoryChunkStore)
    assert directory.root == tmp_path / "my chunks"
    assert directory.url == (tmp_path / "my chunks").as_uri()
    objects = open_store("site://site-a/backups", drivers)
    assert isinstance(objects, ObjectChunkStore)
    assert (objects.url, objects.container) == ("site://site-a/backups", "backups")
    name, sha = stored(objects, b"through the URL")
    assert open_store("site://site-a/backups", drivers).get(name, sha) == b"through the URL"
    with pytest.raises(NotFound, match="site-b"):
        open_store("site://site-b/backups", drivers)


def test_open_store_s3_forms_and_an_unreachable_store_named(s3_server: S3Server) -> None:
    """``s3+http://`` reaches the server without TLS, ``s3://`` means HTTPS; a store that
    does not answer fails its call naming the store and the call, after the retries."""
    url = s3_server.url("my-backups")
    store = open_store(url, lambda site: pytest.fail(f"no driver should be asked for {site}"))
    assert isinstance(store, S3ChunkStore)
    assert (store.url, store.bucket) == (url, "my-backups")
    assert store.client.meta.endpoint_url == s3_server.endpoint
    assert list(store.names()) == []  # the bucket is made at the first put
    name, sha = stored(store, b"through the URL")
    store.client.put_object(Bucket="my-backups", Key="not-a-chunk", Body=b"x")
    assert list(open_store(url, pytest.fail).names()) == [name]
    assert open_store(url, pytest.fail).get(name, sha) == b"through the URL"
    secure = open_store("s3://s3.example:8443/backups", pytest.fail)
    assert isinstance(secure, S3ChunkStore)
    assert secure.client.meta.endpoint_url == "https://s3.example:8443"
    closed = S3ChunkStore("http://127.0.0.1:9", "backups", "s3+http://127.0.0.1:9/b", deadline=1)
    with pytest.raises(ChunkStoreFailed) as failed:
        closed.get(name, sha)
    assert failed.value.message.startswith(
        f"chunk store s3+http://127.0.0.1:9/b: read chunk {name} failed: "
    )


@pytest.mark.parametrize(
    "url",
    [
        "s3://host/Upper_Case",
        "s3://host/bucket/prefix",
        "s3:///bucket",
        "s3://host/bucket?region=x",
        "s3+https://host/bucket",
        "file://relative/path",
        "file://host/abs/path",
        "site://site-a",
        "site://site-a/",
        "site:///backups",
        "site://site-a/a/b",
        "site://site-a/..",
        "site://site-a/backups?x=1",
        "",
        "/plain/path",
    ],
)
def test_bad_urls_name_themselves_and_the_forms(url: str) -> None:
    with pytest.raises(BadRequest) as refused:
        open_store(url, lambda site: pytest.fail(f"no driver should be asked for {site}"))
    assert refused.value.status == 400
    assert f"{url!r}" in refused.value.message
    assert "file:///" in refused.value.message
    assert "site://SITE-NAME/CONTAINER" in refused.value.message
    assert "s3://HOST[:PORT]/BUCKET" in refused.value.message


def test_a_refused_url_never_shows_its_password() -> None:
    with pytest.raises(BadRequest) as refused:
        open_store("s3://key:hunter2@s3.example/bucket", lambda site: pytest.fail(site))
    assert "hunter2" not in refused.value.message
    assert "s3.example/bucket" in refused.value.message


def test_hash_rates_measures_the_three_candidates() -> None:
    rates = hash_rates(4, rounds=1)
    assert set(rates) == {"blake3", "xxh3_128", "sha256"}
    assert all(rate > 0 for rate in rates.values())
