"""Where backup chunks live: a content-addressed store of immutable blobs (issue 16).

``ChunkStore`` is the interface the backup workflow calls: a ``chunks.Chunk`` is put under
its name (``chunks.chunk_name`` of its bytes, computed once when the chunk was made), read
back with the SHA-256 the caller keeps in its manifest (verified: ``ChunkCorrupt``
otherwise), listed and deleted (retention decides what; the store only does
it). Two backends: a directory (``file:///abs/path``; chunks in ``ab/cdef...`` fan-out
directories, written to a temporary file (past the page cache where it can be:
``cascade.direct_io``) and renamed, made durable by ``sync`` of their names (each file and each
fan-out directory flushed, nothing else of the machine's; read back past the cache too)
a container of a registered site's object store (``site://SITE/CONTAINER``; Swift's PUT
is atomic and durable per object, ``sync`` has nothing to do), through the site's
openstacksdk connection inside ``SiteDriver.call``, and a bucket of an S3-compatible store
(``s3_store``: ``s3://HOST[:PORT]/BUCKET``, or ``s3+http://`` without TLS). Imports
``cascade.sites``, ``cascade.errors``, ``cascade.direct_io``, ``chunks``, ``s3_store`` (when an S3
URL is opened) and ``cascade.identity.sealing``'s atomic file write and flush.
"""

from __future__ import annotations

import contextlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from functools import partial
from itertools import islice
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from openstack import exceptions as sdk_exceptions
from openstack.connection import Connection

from cascade.direct_io import read_direct, write_direct
from cascade.errors import BadRequest, CascadeError
from cascade.identity.sealing import flush, write_private
from cascade.protection.chunks import Chunk, chunk_name, is_chunk_name
from cascade.sites.driver import SiteDriver

T = TypeVar("T")
URL_FORMS = "file:///ABSOLUTE/PATH, site://SITE-NAME/CONTAINER or s3://HOST[:PORT]/BUCKET"
S3_SCHEMES = {"s3": "https", "s3+http": "http"}  # URL scheme -> the endpoint's


class ChunkCorrupt(CascadeError):
    """A chunk the store cannot give back as written: missing, or its bytes do not hash to
    the SHA-256 the caller recorded."""

    status = 502

    def __init__(self, name: str, url: str, reason: str) -> None:
        super().__init__(f"chunk {name} in {url} is corrupt: {reason}")
        self.name = name


class ChunkStore(ABC):
    """A content-addressed store of chunks; ``url`` is what it was opened from."""

    url: str

    def has(self, name: str) -> bool:
        return self._has(self._checked(name))

    def put(self, chunk: Chunk) -> None:
        """Store the chunk under its name (``Chunk.of`` named it from its bytes: not hashed
        again). Idempotent and atomic: a reader sees the whole chunk or none of it; durable
        once ``sync`` returns."""
        self._write(self._checked(chunk.name), chunk.data)

    def get(self, name: str, sha256: str) -> bytes:
        """The chunk's bytes, verified against ``sha256`` (the manifest's digest: the name
        itself, except in checkpoints from before chunks were named by it)."""
        data = self._read(self._checked(name))
        if data is None:
            raise ChunkCorrupt(name, self.url, "it is missing")
        found = chunk_name(data)
        if found != sha256:
            raise ChunkCorrupt(name, self.url, f"its bytes' SHA-256 is {found}, not {sha256}")
        return data

    def delete(self, name: str) -> None:
        """Remove the chunk; a missing one is fine."""
        self._remove(self._checked(name))

    @abstractmethod
    def sync(self, names: list[str]) -> None:
        """Make the chunks ``names`` (put, or found in the store) durable, in one batch after
        their puts rather than one flush per put."""

    @abstractmethod
    def names(self) -> Iterator[str]:
        """The name of every chunk stored."""

    def _checked(self, name: str) -> str:
        if not is_chunk_name(name):
            raise BadRequest(f"{name!r} is not a chunk name (64 lowercase hex digits)")
        return name

    @abstractmethod
    def _has(self, name: str) -> bool: ...

    @abstractmethod
    def _write(self, name: str, data: bytes) -> None: ...

    @abstractmethod
    def _read(self, name: str) -> bytes | None: ...

    @abstractmethod
    def _remove(self, name: str) -> None: ...


class DirectoryChunkStore(ChunkStore):
    """Chunks as files ``root/ab/cdef...`` (mode 0600); temporary files start with a dot."""

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()
        self.url = self.root.as_uri()

    def path(self, name: str) -> Path:
        return self.root / name[:2] / name[2:]

    def names(self) -> Iterator[str]:
        for path in self.root.glob("??/*"):
            if is_chunk_name(path.parent.name + path.name):
                yield path.parent.name + path.name

    def _has(self, name: str) -> bool:
        return self.path(name).is_file()

    def _write(self, name: str, data: bytes) -> None:
        """A temporary file renamed: past the page cache where it can be, else through it."""
        path = self.path(name)
        if not write_direct(path, data):
            write_private(path, data)  # through the cache: flushed here, on the put's thread

    def sync(self, names: list[str]) -> None:
        """Each chunk file, then each directory holding one, flushed (``os.fsync``): the
        first flush commits the filesystem's journal, with every rename in it, and the
        written bytes already went past the cache; what else the machine has to write back
        (a site's fresh snapshot, on one machine) is not waited for, as ``os.sync`` would.
        A chunk missing by now is left to the caller's manifest check."""
        paths = [self.path(self._checked(name)) for name in names]
        for path in [*paths, *sorted({path.parent for path in paths})]:
            with contextlib.suppress(FileNotFoundError):
                flush(path)

    def _read(self, name: str) -> bytes | None:
        path = self.path(name)
        try:
            found = read_direct(path)
            return path.read_bytes() if found is None else found
        except FileNotFoundError:
            return None

    def _remove(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)


def _unless_missing(action: Callable[[], T], missing: T) -> T:
    """``action()``, or ``missing`` if the object store answers 404."""
    try:
        return action()
    except sdk_exceptions.NotFoundException:
        return missing


class ObjectChunkStore(ChunkStore):
    """Chunks as objects of one container in a site's object store (Swift API)."""

    def __init__(self, driver: SiteDriver, container: str, page_size: int = 1000) -> None:
        self.driver = driver
        self.container = container
        self.page_size = page_size  # names per listing request
        self.url = f"site://{driver.access.name}/{container}"
        self._container_made = False

    def sync(self, names: list[str]) -> None:
        return None  # a Swift PUT is durable when it answers

    def names(self) -> Iterator[str]:
        marker = ""
        while True:
            page = self.driver.call(
                f"list chunks of {self.url} after {marker!r}", partial(self._page, marker=marker)
            )
            yield from page
            if len(page) < self.page_size:
                return
            marker = page[-1]

    def _page(self, c: Connection, marker: str) -> list[str]:
        """One listing request: up to ``page_size`` names after ``marker`` (none if the
        container was never made)."""
        objects = c.object_store.objects(self.container, limit=self.page_size, marker=marker)
        return _unless_missing(
            lambda: [str(o.name) for o in islice(objects, self.page_size)], missing=[]
        )

    def _has(self, name: str) -> bool:
        return self.driver.call(
            f"look for chunk {name} in {self.url}",
            lambda c: _unless_missing(
                lambda: c.object_store.get_object_metadata(name, self.container) is not None,
                missing=False,
            ),
        )

    def _write(self, name: str, data: bytes) -> None:
        if not self._container_made:
            self.driver.call(
                f"create container {self.container}",
                lambda c: c.object_store.create_container(name=self.container),
            )
            self._container_made = True
        self.driver.call(
            f"store chunk {name} in {self.url}",
            lambda c: c.object_store.upload_object(container=self.container, name=name, data=data),
        )

    def _read(self, name: str) -> bytes | None:
        def download(c: Connection) -> bytes | None:
            return _unless_missing(
                lambda: bytes(c.object_store.download_object(name, self.container)), None
            )

        return self.driver.call(f"read chunk {name} from {self.url}", download)

    def _remove(self, name: str) -> None:
        self.driver.call(
            f"delete chunk {name} from {self.url}",
            lambda c: c.object_store.delete_object(
                name, ignore_missing=True, container=self.container
            ),
        )


def store_location(url: str) -> tuple[str, str]:
    """What a chunk store URL names: ("file", the directory) for ``file:///abs/path``,
    ("site", the site name) for ``site://SITE-NAME/CONTAINER``, or ("s3", the endpoint URL)
    for ``s3://HOST[:PORT]/BUCKET`` (``s3+http://``: plain HTTP); ``BadRequest`` otherwise.
    Credentials never ride in the URL: an S3 store takes them from boto3's own chain."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    plain = not (parts.query or parts.fragment or "@" in parts.netloc)
    if plain and parts.scheme == "file" and not parts.netloc and path.startswith("/"):
        return "file", path
    if plain and parts.scheme == "site" and parts.netloc and _is_container(path[1:]):
        return "site", parts.netloc
    if plain and parts.scheme in S3_SCHEMES and parts.netloc and _is_bucket(path[1:]):
        return "s3", f"{S3_SCHEMES[parts.scheme]}://{parts.netloc}"
    if "@" in parts.netloc:  # never echo credentials
        url = parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()
    raise BadRequest(f"chunk store URL {url!r} is not of the form {URL_FORMS}")


def open_store(url: str, drivers: Callable[[str], SiteDriver]) -> ChunkStore:
    """The chunk store a URL names (see ``store_location``); ``drivers`` gives the driver of
    a registered site by name."""
    kind, where = store_location(url)
    if kind == "file":
        return DirectoryChunkStore(Path(where))
    container = unquote(urlsplit(url).path)[1:]
    if kind == "s3":
        from cascade.protection.s3_store import S3ChunkStore  # boto3 only where it is used

        return S3ChunkStore(where, container, url)
    return ObjectChunkStore(drivers(where), container)


def _is_container(name: str) -> bool:
    return bool(name) and "/" not in name and name not in (".", "..")


def _is_bucket(name: str) -> bool:
    """An S3 bucket name as the S3 API allows it: 3-63 lowercase letters, digits, dots and
    hyphens, starting and ending with a letter or digit."""
    return re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", name) is not None
