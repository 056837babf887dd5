"""A Swift-like object store at ``/object-store/v1/AUTH_{project_id}``: an account's
containers and their objects in Swift's formats (listings as text, or JSON with
``?format=json``; ``ETag`` the md5 hex of the object; ``X-Timestamp``; ``Range`` reads) and
Dynamic Large Objects: an object stored with ``X-Object-Manifest: <container>/<prefix>`` reads
as the concatenation of the objects under that prefix, in name order, as Swift's DLO does
(its ETag the quoted md5 of their ETags; no ``Range`` on one). ``object_files`` gives the
files of an object, a DLO's segments or its own, to the site's other services (Glance's
``web-download`` reads its own store with it).

An object's bytes live in ``<data_dir>/objects/<project>/<container>/<name>`` (a name may
contain ``/``, never a ``.`` or ``..`` segment); its md5, size, content type and timestamp in
the site state (kind ``object``), each container's timestamp likewise (kind ``container``).
Data is written under a temporary name and renamed, then recorded. Only the token's own
project's account is reachable; an admin reaches every account.
"""

from __future__ import annotations

import hashlib
import math
import mimetypes
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse

from cascade.api.keystone import Caller
from cascade.identity import AuthContext
from cascade_sim.common import RegionDep
from cascade_sim.errors import SimError
from cascade_sim.region import Region
from cascade_sim.state import new_uuid

Json = dict[str, Any]
ACCOUNT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
READ_SIZE = 1 << 20

router = APIRouter(prefix="/object-store/v1/AUTH_{project_id}", tags=["object-store"])


def _account(project_id: str, caller: Caller) -> str:
    return _reachable(project_id, caller)


def _reachable(project_id: str, caller: AuthContext) -> str:
    if not project_id or not set(project_id) <= ACCOUNT_CHARS:
        raise SimError(400, f"Invalid account name AUTH_{project_id}.")
    if not caller.is_admin and (caller.project is None or caller.project.id != project_id):
        raise SimError(403, f"The token's project may not access account AUTH_{project_id}.")
    return project_id


Account = Annotated[str, Depends(_account)]


@dataclass
class Listing:
    """Swift's listing parameters; JSON with ``?format=json`` or ``Accept: application/json``."""

    format: str | None = None
    accept: Annotated[str, Header()] = ""
    prefix: str = ""
    marker: str = ""
    delimiter: Annotated[str | None, Query(min_length=1, max_length=1)] = None
    limit: Annotated[int, Query(ge=0, le=10000)] = 10000


ListingDep = Annotated[Listing, Depends()]


def _check_name(name: str, what: str, allow_slash: bool) -> None:
    segments = name.split("/") if allow_slash else [name]
    if not 0 < len(name) <= 1024 or "\0" in name or (not allow_slash and "/" in name):
        raise SimError(400, f"Invalid {what} name {name!r}.")
    if any(segment in ("", ".", "..") for segment in segments):
        raise SimError(400, f"Invalid {what} name {name!r}: no empty, '.' or '..' segment.")


def _key(*parts: str) -> str:
    """A state id for a path of any length (ids are at most 64 characters)."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def _directory(site: Region, account: str, container: str) -> Path:
    return site.config.data_dir / "objects" / account / container


def _container(site: Region, account: str, container: str) -> Json:
    _check_name(container, "container", allow_slash=False)
    record = site.state.get("container", _key(account, container))
    if record is None:
        raise SimError(404, f"Container {container} not found.")
    return record


def _object(site: Region, account: str, container: str, name: str) -> Json:
    _container(site, account, container)
    _check_name(name, "object", allow_slash=True)
    record = site.state.get("object", _key(account, container, name))
    if record is None:
        raise SimError(404, f"Object {container}/{name} not found.")
    return record


def _objects(site: Region, account: str) -> list[Json]:
    return site.state.list("object", account)


def _stamp(timestamp: float) -> str:
    return f"{timestamp:.5f}"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _select(entries: list[Json], query: Listing) -> list[Json]:
    """Swift's listing rules: sorted by name, after ``marker``, under ``prefix``, names past
    the ``delimiter`` rolled up into one ``subdir`` each, at most ``limit`` entries."""
    chosen: list[Json] = []
    rolled: set[str] = set()
    for entry in sorted(entries, key=lambda e: str(e["name"])):
        name = entry["name"]
        if len(chosen) >= query.limit:
            break
        if not name.startswith(query.prefix) or name <= query.marker:
            continue
        cut = name.find(query.delimiter, len(query.prefix)) if query.delimiter else -1
        if cut < 0:
            chosen.append(entry)
        elif name[: cut + 1] not in rolled:
            rolled.add(name[: cut + 1])
            chosen.append({"subdir": name[: cut + 1]})
    return chosen


def _listing(entries: list[Json], query: Listing, headers: dict[str, str]) -> Response:
    selected = _select(entries, query)
    if query.format == "json" or "application/json" in query.accept:
        return JSONResponse(selected, headers=headers)
    if not selected:
        return Response(status_code=204, headers=headers)
    text = "".join(f"{entry.get('name', entry.get('subdir'))}\n" for entry in selected)
    return PlainTextResponse(text, headers=headers)


# ---- account ------------------------------------------------------------------------------


@router.api_route("", methods=["GET", "HEAD"], summary="List the account's containers")
def show_account(account: Account, site: RegionDep, query: ListingDep) -> Response:
    containers = site.state.list("container", account)
    objects = _objects(site, account)
    entries = [
        {
            "name": c["name"],
            "count": sum(1 for o in objects if o["container"] == c["name"]),
            "bytes": sum(o["bytes"] for o in objects if o["container"] == c["name"]),
            "last_modified": _iso(c["timestamp"]),
        }
        for c in containers
    ]
    headers = {
        "X-Account-Container-Count": str(len(containers)),
        "X-Account-Object-Count": str(len(objects)),
        "X-Account-Bytes-Used": str(sum(o["bytes"] for o in objects)),
        "X-Timestamp": _stamp(min((c["timestamp"] for c in containers), default=time.time())),
    }
    return _listing(entries, query, headers)


# ---- containers ---------------------------------------------------------------------------


@router.put("/{container}", summary="Create a container (202 if it exists)")
def create_container(container: str, account: Account, site: RegionDep) -> Response:
    _check_name(container, "container", allow_slash=False)
    key = _key(account, container)
    with site.state.lock:
        if site.state.get("container", key) is not None:
            return Response(status_code=202)
        _directory(site, account, container).mkdir(parents=True, exist_ok=True)
        now = time.time()
        record = {"id": key, "name": container, "timestamp": now, "_project_id": account}
        site.state.put("container", record, account)
    return Response(status_code=201, headers={"X-Timestamp": _stamp(now)})


@router.api_route("/{container}", methods=["GET", "HEAD"], summary="List a container's objects")
def show_container(
    container: str, account: Account, site: RegionDep, query: ListingDep
) -> Response:
    record = _container(site, account, container)
    objects = [o for o in _objects(site, account) if o["container"] == container]
    entries = [
        {
            "name": o["name"],
            "bytes": o["bytes"],
            "hash": o["hash"],
            "last_modified": _iso(o["timestamp"]),
            "content_type": o["content_type"],
        }
        for o in objects
    ]
    headers = {
        "X-Container-Object-Count": str(len(objects)),
        "X-Container-Bytes-Used": str(sum(o["bytes"] for o in objects)),
        "X-Timestamp": _stamp(record["timestamp"]),
    }
    return _listing(entries, query, headers)


@router.delete("/{container}", status_code=204, response_class=Response, summary="Delete")
def delete_container(container: str, account: Account, site: RegionDep) -> None:
    with site.state.lock:
        record = _container(site, account, container)
        if any(o["container"] == container for o in _objects(site, account)):
            raise SimError(409, f"Container {container} is not empty.")
        site.state.delete("container", record["id"])
        shutil.rmtree(_directory(site, account, container), ignore_errors=True)


# ---- objects ------------------------------------------------------------------------------


def _object_headers(record: Json) -> dict[str, str]:
    return {
        "ETag": record["hash"],
        "X-Timestamp": _stamp(record["timestamp"]),
        "Last-Modified": formatdate(math.ceil(record["timestamp"]), usegmt=True),
    }


def _place(temporary: Path, target: Path, container_dir: Path) -> None:
    """Move uploaded data to its name; a name colliding with a pseudo-directory is a 409."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temporary, target)
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        name = target.relative_to(container_dir)
        raise SimError(409, f"Object name {name} collides with another object's path.") from None


@router.put("/{container}/{name:path}", status_code=201, response_class=Response, summary="Upload")
async def put_object(
    container: str,
    name: str,
    request: Request,
    response: Response,
    account: Account,
    site: RegionDep,
) -> None:
    _container(site, account, container)
    _check_name(name, "object", allow_slash=True)
    _manifest(request.headers.get("x-object-manifest"))  # a bad one is refused before the data
    scratch = site.config.data_dir / "objects" / ".incoming"
    scratch.mkdir(parents=True, exist_ok=True)
    temporary = scratch / new_uuid()
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        with temporary.open("wb") as handle:
            async for piece in request.stream():
                digest.update(piece)
                handle.write(piece)
                size += len(piece)
        expected = request.headers.get("etag", "").strip('"').lower()
        if expected and expected != digest.hexdigest():
            raise SimError(422, f"The ETag {expected} does not match the data's md5.")
        directory = _directory(site, account, container)
        _place(temporary, directory / name, directory)
    finally:
        temporary.unlink(missing_ok=True)
    record = {
        "id": _key(account, container, name),
        "container": container,
        "name": name,
        "bytes": size,
        "hash": digest.hexdigest(),
        "content_type": request.headers.get("content-type")
        or mimetypes.guess_type(name)[0]
        or "application/octet-stream",
        "timestamp": time.time(),
        "_project_id": account,
        **_manifest(request.headers.get("x-object-manifest")),
    }
    site.state.put("object", record, account)
    response.headers.update(_object_headers(record))


@router.api_route("/{container}/{name:path}", methods=["GET", "HEAD"], summary="Download")
def get_object(container: str, name: str, account: Account, site: RegionDep) -> Response:
    record = _object(site, account, container, name)
    headers = {**_object_headers(record), "Content-Type": record["content_type"]}  # as stored
    if "manifest" not in record:
        path = _directory(site, account, container) / name
        return FileResponse(path, headers=headers, stat_result=path.stat())
    segments = _segments(site, account, record["manifest"])
    combined = hashlib.md5("".join(s["hash"] for s in segments).encode(), usedforsecurity=False)
    headers.update(
        {
            "ETag": f'"{combined.hexdigest()}"',
            "X-Object-Manifest": record["manifest"],
            "Content-Length": str(sum(s["bytes"] for s in segments)),
        }
    )
    return StreamingResponse(_concatenated(_files(site, account, segments)), headers=headers)


def _manifest(header: str | None) -> Json:
    """The record's ``manifest`` for an ``X-Object-Manifest`` header: ``<container>/<prefix>``."""
    if header is None:
        return {}
    container, slash, _prefix = header.partition("/")
    if not slash:
        raise SimError(400, "X-Object-Manifest must be in the format container/prefix.")
    _check_name(container, "container", allow_slash=False)
    return {"manifest": header}


def _segments(site: Region, account: str, manifest: str) -> list[Json]:
    """A DLO's segments: the objects under its prefix, in name order (none if no container)."""
    container, _, prefix = manifest.partition("/")
    found = [
        o
        for o in _objects(site, account)
        if o["container"] == container and o["name"].startswith(prefix) and "manifest" not in o
    ]
    return sorted(found, key=lambda o: str(o["name"]))


def _files(site: Region, account: str, records: list[Json]) -> list[Path]:
    return [_directory(site, account, r["container"]) / r["name"] for r in records]


def _concatenated(files: list[Path]) -> Iterator[bytes]:
    for path in files:
        with path.open("rb") as handle:
            while piece := handle.read(READ_SIZE):
                yield piece


def object_files(
    site: Region, caller: AuthContext, account: str, container: str, name: str
) -> list[Path]:
    """The files whose concatenation is the object's bytes, for a caller who may read the
    account: a DLO's segments in name order, or the object's own file."""
    record = _object(site, _reachable(account, caller), container, name)
    if "manifest" not in record:
        return [_directory(site, account, container) / name]
    return _files(site, account, _segments(site, account, record["manifest"]))


@router.delete(
    "/{container}/{name:path}", status_code=204, response_class=Response, summary="Delete"
)
def delete_object(container: str, name: str, account: Account, site: RegionDep) -> None:
    with site.state.lock:
        record = _object(site, account, container, name)
        site.state.delete("object", record["id"])
        directory = _directory(site, account, container)
        path = directory / name
        path.unlink(missing_ok=True)
        for parent in path.parents:  # pseudo-directories left empty
            if parent == directory or any(parent.iterdir()):
                break
            parent.rmdir()


def routers() -> list[APIRouter]:
    return [router]
