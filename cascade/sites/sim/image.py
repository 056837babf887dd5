"""Glance v2 at ``/image``: image records (core attributes, visibility, tags, extra properties
as top-level keys), listing with Glance's filters, sorting and ``limit``/``marker``, JSON-patch
updates, and real bytes: an upload streams to ``<data_dir>/images/<id>`` computing its md5
``checksum`` and sha512 ``os_hash_value`` on the way, a download streams it back; the
interoperable import (``glance-direct``: stage, then import) lands the bytes the same way.
``image_file`` and ``get_image`` are what the compute and volume services read.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from cascade.api.deps import Caller
from cascade.identity.tokens import AuthContext
from cascade.sites.sim.common import SiteDep, project_of, public
from cascade.sites.sim.errors import SimError
from cascade.sites.sim.site import Site
from cascade.sites.sim.state import now_iso

PREFIX = "/image/v2"
Json = dict[str, Any]
JsonBody = Annotated[Any, Body()]
Check = Callable[[str, Any], Any]

IMPORT_METHODS = ("glance-direct",)
PATCH_TYPES = (
    "application/openstack-images-v2.1-json-patch",
    "application/openstack-images-v2.0-json-patch",
)
DISK_FORMATS = (None, "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso")
CONTAINER_FORMATS = (None, "ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")
VISIBILITIES = ("public", "private", "shared", "community")
READ_ONLY = {
    "id", "status", "checksum", "os_hash_algo", "os_hash_value", "size", "virtual_size",
    "created_at", "updated_at", "self", "file", "schema", "direct_url", "locations", "stores",
}  # fmt: skip
SORT_KEYS = {
    "name", "status", "container_format", "disk_format", "size", "virtual_size", "id",
    "created_at", "updated_at", "visibility", "owner", "min_disk", "min_ram",
}  # fmt: skip
LIST_CONTROLS = {"limit", "marker", "sort", "sort_key", "sort_dir", "visibility", "tag"}
LIST_CONTROLS |= {"size_min", "size_max", "os_hidden"}
DEFAULT_LIMIT, MAX_LIMIT = 25, 1000
CHUNK = 1 << 20


@dataclass(frozen=True)
class Digest:
    md5: str
    sha512: str
    size: int


# -- attribute checks ------------------------------------------------------------------------


def _invalid(key: str, value: Any, expected: str) -> SimError:
    return SimError(400, f"Invalid value {value!r} for '{key}': {expected} expected.")


def _name(key: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > 255):
        raise _invalid(key, value, "null or a string of at most 255 characters")
    return value


def _one_of(*choices: str | None) -> Check:
    def check(key: str, value: Any) -> Any:
        if value not in choices:
            raise _invalid(key, value, f"one of {list(choices)}")
        return value

    return check


def _count(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _invalid(key, value, "a non-negative integer")
    return value


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _invalid(key, value, "a boolean")
    return value


def _tags(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(_is_tag(tag) for tag in value):
        raise _invalid(key, value, "a list of strings of 1 to 255 characters")
    return list(dict.fromkeys(value))


def _is_tag(tag: Any) -> bool:
    return isinstance(tag, str) and 0 < len(tag) <= 255


def _owner(key: str, value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 255:
        raise _invalid(key, value, "a project id")
    return value


def _property(key: str, value: Any) -> str:
    if len(key) > 255 or not isinstance(value, str) or len(value) > 65535:
        raise _invalid(key, value, "a string (extra properties are strings)")
    return value


CORE: dict[str, Check] = {
    "name": _name,
    "disk_format": _one_of(*DISK_FORMATS),
    "container_format": _one_of(*CONTAINER_FORMATS),
    "visibility": _one_of(*VISIBILITIES),
    "min_disk": _count,
    "min_ram": _count,
    "protected": _flag,
    "os_hidden": _flag,
    "tags": _tags,
    "owner": _owner,
}


def _guard(key: str) -> None:
    if key in READ_ONLY:
        raise SimError(403, f"Attribute '{key}' is read-only.")
    if key.startswith(("os_glance", "_")):
        raise SimError(403, f"Attribute '{key}' is reserved.")


def _checked(caller: AuthContext, key: str, value: Any) -> Any:
    """A value the caller may give ``key``: 403 for read-only, reserved and admin-only ones."""
    _guard(key)
    if key == "owner" and not caller.is_admin and value != project_of(caller):
        raise SimError(403, "Owner can't be updated by non admin.")
    if key == "visibility" and value == "public" and not caller.is_admin:
        raise SimError(403, "You are not authorized to complete publicize_image action.")
    check: Check = CORE.get(key, _property)
    return check(key, value)


# -- records ---------------------------------------------------------------------------------


def _visible(caller: AuthContext, image: Json) -> bool:
    mine = image["owner"] == project_of(caller)
    return caller.is_admin or mine or image["visibility"] in ("public", "community")


def _find(site: Site, caller: AuthContext, image_id: str) -> Json:
    image = site.state.get("image", image_id)
    if image is None or not _visible(caller, image):
        raise SimError(404, f"No image found with ID {image_id}")
    return image


def _mine(site: Site, caller: AuthContext, image_id: str) -> Json:
    image = _find(site, caller, image_id)
    if not (caller.is_admin or image["owner"] == project_of(caller)):
        raise SimError(403, f"You are not permitted to modify image {image_id}.")
    return image


def _store(site: Site, image: Json) -> None:
    image["_project_id"] = image["owner"]
    image["updated_at"] = now_iso()
    site.state.put("image", image, image["owner"])


def _new_id(site: Site, wanted: Any) -> str:
    if wanted is None:
        return str(uuid.uuid4())
    try:
        image_id = str(uuid.UUID(wanted))
    except (TypeError, ValueError, AttributeError):
        raise _invalid("id", wanted, "a UUID") from None
    if site.state.get("image", image_id) is not None:
        raise SimError(409, f"Image with identifier {image_id} already exists!")
    return image_id


def _create(site: Site, caller: AuthContext, raw: Any) -> Json:
    if not isinstance(raw, dict):
        raise SimError(400, "The request body must be a JSON object of image attributes.")
    given = dict(raw)
    image_id = _new_id(site, given.pop("id", None))
    attrs = {key: _checked(caller, key, value) for key, value in given.items()}
    now = now_iso()
    image = {
        "id": image_id,
        "name": None,
        "status": "queued",
        "visibility": "shared",
        "protected": False,
        "os_hidden": False,
        "checksum": None,
        "os_hash_algo": None,
        "os_hash_value": None,
        "size": None,
        "virtual_size": None,
        "min_disk": 0,
        "min_ram": 0,
        "disk_format": None,
        "container_format": None,
        "tags": [],
        "owner": project_of(caller),
        "created_at": now,
        **attrs,
        "self": f"/v2/images/{image_id}",
        "file": f"/v2/images/{image_id}/file",
        "schema": "/v2/schemas/image",
    }
    _store(site, image)
    return image


# -- JSON patch ------------------------------------------------------------------------------


def _operation(raw: Any) -> tuple[str, str, Any]:
    if not isinstance(raw, dict) or raw.get("op") not in ("add", "replace", "remove"):
        raise SimError(400, f"Unable to find a supported 'op' (add, replace, remove) in {raw!r}.")
    path = raw.get("path")
    if not isinstance(path, str) or not path.startswith("/") or len(path) < 2:
        raise SimError(400, f"Invalid JSON pointer for this resource: {path!r}.")
    key = path[1:].split("/")[0].replace("~1", "/").replace("~0", "~")
    if "/" in path[1:] and key not in READ_ONLY:
        raise SimError(400, f"Invalid JSON pointer for this resource: {path!r}.")
    if raw["op"] != "remove" and "value" not in raw:
        raise SimError(400, f"Operation objects must contain a 'value' member: {raw!r}.")
    return raw["op"], key, raw.get("value")


def _apply(caller: AuthContext, image: Json, op: str, key: str, value: Any) -> None:
    if op != "remove":
        checked = _checked(caller, key, value)
        if op == "replace" and key not in CORE and key not in image:
            raise SimError(409, f"Property {key} does not exist.")
        image[key] = checked
        return
    _guard(key)
    if key in CORE:
        raise SimError(403, f"Property {key} may not be removed.")
    if key not in image:
        raise SimError(409, f"Property {key} does not exist.")
    del image[key]


def _patched(caller: AuthContext, image: Json, operations: Any) -> Json:
    if not isinstance(operations, list):
        raise SimError(400, "The request body must be a JSON array of patch operations.")
    changed = copy.deepcopy(image)
    for raw in operations:
        _apply(caller, changed, *_operation(raw))
    return changed


# -- listing ---------------------------------------------------------------------------------


def _grouped(request: Request) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        grouped.setdefault(key, []).append(value)
    return grouped


def _listed(caller: AuthContext, image: Json, visibility: str | None) -> bool:
    """Glance's default list: public images and the project's own (not others' community)."""
    if visibility is None:
        mine = image["owner"] == project_of(caller)
        return caller.is_admin or mine or image["visibility"] == "public"
    wanted = visibility in ("all", image["visibility"])
    return wanted and _visible(caller, image)


def _same(value: Any, text: str) -> bool:
    if isinstance(value, bool):
        return str(value).lower() == text.lower()
    return value is not None and str(value) == text


def _number(query: dict[str, list[str]], key: str) -> int | None:
    if key not in query:
        return None
    try:
        return int(query[key][-1])
    except ValueError:
        raise SimError(400, f"{key} param must be an integer") from None


def _within_size(image: Json, query: dict[str, list[str]]) -> bool:
    low, high = _number(query, "size_min"), _number(query, "size_max")
    if low is None and high is None:
        return True
    size = image["size"]
    return size is not None and (low is None or size >= low) and (high is None or size <= high)


def _passes(image: Json, query: dict[str, list[str]]) -> bool:
    hidden = query.get("os_hidden", ["false"])[-1].lower() == "true"
    if image["os_hidden"] != hidden or not set(query.get("tag", [])) <= set(image["tags"]):
        return False
    others = {key: values for key, values in query.items() if key not in LIST_CONTROLS}
    matches = all(_same(image.get(key), values[-1]) for key, values in others.items())
    return matches and _within_size(image, query)


def _sort_spec(query: dict[str, list[str]]) -> list[tuple[str, str]]:
    """``sort=name:asc,size`` or ``sort_key=...&sort_dir=...``; newest first by default."""
    if "sort" in query:
        pairs = [item.partition(":") for item in query["sort"][-1].split(",") if item]
        spec = [(key, direction or "desc") for key, _colon, direction in pairs]
    else:
        keys = query.get("sort_key", ["created_at"])
        directions = query.get("sort_dir", ["desc"])
        directions = directions * len(keys) if len(directions) == 1 else directions
        if len(directions) != len(keys):
            raise SimError(400, "The number of sort_key and sort_dir values must match.")
        spec = list(zip(keys, directions, strict=True))
    invalid = [f"{k}:{d}" for k, d in spec if k not in SORT_KEYS or d not in ("asc", "desc")]
    if invalid or not spec:
        raise SimError(400, f"Invalid sort: {', '.join(invalid) or 'nothing to sort by'}.")
    return [*spec, ("id", spec[0][1])]


def _by(key: str) -> Callable[[Json], tuple[bool, Any]]:
    def sort_key(image: Json) -> tuple[bool, Any]:
        return (image[key] is not None, image[key])

    return sort_key


def _sorted(images: list[Json], query: dict[str, list[str]]) -> list[Json]:
    for key, direction in reversed(_sort_spec(query)):
        images = sorted(images, key=_by(key), reverse=direction == "desc")
    return images


def _limit(query: dict[str, list[str]]) -> int:
    limit = _number(query, "limit")
    if limit is not None and limit < 0:
        raise SimError(400, "limit param must be positive")
    return DEFAULT_LIMIT if limit is None else min(limit, MAX_LIMIT)


def _list(site: Site, caller: AuthContext, request: Request) -> Json:
    query = _grouped(request)
    visibility = query.get("visibility", [None])[-1]
    if visibility not in (None, "all", *VISIBILITIES):
        raise SimError(400, f"Invalid visibility value: {visibility}")
    images = [
        image
        for image in site.state.list("image")
        if _listed(caller, image, visibility) and _passes(image, query)
    ]
    images = _sorted(images, query)
    if "marker" in query:
        ids = [image["id"] for image in images]
        if query["marker"][-1] not in ids:
            raise SimError(400, f"Invalid marker. Image {query['marker'][-1]} could not be found.")
        images = images[ids.index(query["marker"][-1]) + 1 :]
    limit = _limit(query)
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("marker", "limit")]
    body: Json = {
        "images": [public(image) for image in images[:limit]],
        "first": "/v2/images" + (f"?{urlencode(kept)}" if kept else ""),
        "schema": "/v2/schemas/images",
    }
    if len(images) > limit:
        following = [*kept, ("marker", images[limit - 1]["id"]), ("limit", str(limit))]
        body["next"] = f"/v2/images?{urlencode(following)}"
    return body


# -- bytes -----------------------------------------------------------------------------------


def _image_dir(site: Site) -> Path:
    directory = site.config.data_dir / "images"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _data_path(site: Site, image_id: str) -> Path:
    return _image_dir(site) / image_id


def _stage_path(site: Site, image_id: str) -> Path:
    return _image_dir(site) / f"{image_id}.stage"


def _part_path(site: Site, image_id: str) -> Path:
    return _image_dir(site) / f"{image_id}.part"


def _require_octet_stream(request: Request) -> None:
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != "application/octet-stream":
        message = f"Unsupported Content-Type {content_type!r}: send application/octet-stream."
        raise SimError(415, message)


def _begin(site: Site, caller: AuthContext, image_id: str, allowed: str, status: str) -> None:
    """Move an image from ``allowed`` status to ``status`` before bytes arrive."""
    with site.state.lock:
        image = _mine(site, caller, image_id)
        if image["status"] != allowed:
            message = f"Image status transition from {image['status']} to {status} is not allowed"
            raise SimError(409, message)
        if not (image["disk_format"] and image["container_format"]):
            message = "Properties disk_format, container_format must be set prior to saving data."
            raise SimError(400, message)
        image["status"] = status
        _store(site, image)


def _set_status(site: Site, image_id: str, status: str) -> None:
    with site.state.lock:
        image = site.state.get("image", image_id)
        if image is not None:
            image["status"] = status
            _store(site, image)


async def _receive(site: Site, request: Request, image_id: str, target: Path) -> Digest:
    """Stream the request body to ``target``; on failure the image is queued again."""
    md5, sha512, size = hashlib.md5(usedforsecurity=False), hashlib.sha512(), 0
    try:
        with target.open("wb") as handle:
            async for chunk in request.stream():
                handle.write(chunk)
                md5.update(chunk)
                sha512.update(chunk)
                size += len(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        _set_status(site, image_id, "queued")
        raise
    return Digest(md5.hexdigest(), sha512.hexdigest(), size)


def _still_there(site: Site, image_id: str, source: Path) -> Json:
    image = site.state.get("image", image_id)
    if image is None:
        source.unlink(missing_ok=True)
        message = (
            f"Image {image_id} could not be found after upload. "
            "The image may have been deleted during the upload."
        )
        raise SimError(410, message)
    return image


def _activate(site: Site, image_id: str, digest: Digest, source: Path) -> None:
    with site.state.lock:
        image = _still_there(site, image_id, source)
        source.replace(_data_path(site, image_id))
        image.pop("_staged", None)
        image.update(
            status="active",
            checksum=digest.md5,
            os_hash_algo="sha512",
            os_hash_value=digest.sha512,
            size=digest.size,
        )
        _store(site, image)


def _keep_staged(site: Site, image_id: str, digest: Digest, source: Path) -> None:
    with site.state.lock:
        image = _still_there(site, image_id, source)
        image["_staged"] = asdict(digest)
        _store(site, image)


def _check_import(raw: Any) -> None:
    allowed = {"method", "stores", "all_stores", "all_stores_must_succeed"}  # one store here
    method = raw.get("method") if isinstance(raw, dict) and not set(raw) - allowed else None
    name = method.get("name") if isinstance(method, dict) else None
    if name not in IMPORT_METHODS:
        supported = list(IMPORT_METHODS)
        raise SimError(400, f"Import method {name!r} is not supported; use {supported}.")


def _staged_digest(site: Site, caller: AuthContext, image_id: str) -> Digest:
    with site.state.lock:
        image = _mine(site, caller, image_id)
        if image["status"] != "uploading" or "_staged" not in image:
            message = "Image needs to be staged before 'glance-direct' method can be used"
            raise SimError(409, message)
        image["status"] = "importing"
        _store(site, image)
        return Digest(**image["_staged"])


# -- what other services read ----------------------------------------------------------------


def get_image(site: Site, image_id: str) -> dict[str, Any] | None:
    image = site.state.get("image", image_id)
    return public(image) if image is not None else None


def image_file(site: Site, image_id: str) -> Path | None:
    """The bytes of an active image, or None when it is unknown or has no data."""
    image = site.state.get("image", image_id)
    if image is None or image["status"] != "active":
        return None
    path = _data_path(site, image["id"])
    return path if path.exists() else None


# -- HTTP ------------------------------------------------------------------------------------


def _versions(request: Request) -> Json:
    href = f"{str(request.base_url).rstrip('/')}{PREFIX}/"
    return {
        "versions": [
            {
                "id": f"v2.{minor}",
                "status": "CURRENT" if minor == 16 else "SUPPORTED",
                "links": [{"rel": "self", "href": href}],
            }
            for minor in range(16, -1, -1)
        ]
    }


def _discovery(router: APIRouter) -> None:
    @router.get("/image", include_in_schema=False)
    @router.get("/image/", status_code=300, summary="Glance API versions")
    def list_versions(request: Request) -> JSONResponse:
        return JSONResponse(_versions(request), status_code=300)

    @router.get("/image/versions", summary="Glance API versions")
    def show_versions(request: Request) -> Json:
        return _versions(request)

    @router.get(f"{PREFIX}/info/import", summary="Image import methods")
    def import_info(_caller: Caller) -> Json:
        methods = {"description": "Import methods available.", "type": "array"}
        return {"import-methods": {**methods, "value": list(IMPORT_METHODS)}}


def _records(router: APIRouter) -> None:
    @router.post(f"{PREFIX}/images", status_code=201, summary="Create an image")
    def create_image(body: JsonBody, caller: Caller, site: SiteDep, response: Response) -> Json:
        response.headers["OpenStack-image-import-methods"] = ",".join(IMPORT_METHODS)
        return public(_create(site, caller, body))

    @router.get(f"{PREFIX}/images", summary="List images")
    def list_images(request: Request, caller: Caller, site: SiteDep) -> Json:
        return _list(site, caller, request)

    @router.get(f"{PREFIX}/images/{{image_id}}", summary="Show an image")
    def show_image(image_id: str, caller: Caller, site: SiteDep) -> Json:
        return public(_find(site, caller, image_id))

    @router.patch(f"{PREFIX}/images/{{image_id}}", summary="Update an image (JSON patch)")
    async def update_image(image_id: str, request: Request, caller: Caller, site: SiteDep) -> Json:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type not in PATCH_TYPES:
            message = f"Unsupported Content-Type {content_type!r}: use {PATCH_TYPES[0]}."
            raise SimError(415, message)
        try:
            operations = json.loads(await request.body())
        except ValueError:
            raise SimError(400, "Malformed JSON in request body.") from None
        with site.state.lock:
            changed = _patched(caller, _mine(site, caller, image_id), operations)
            _store(site, changed)
        return public(changed)

    @router.delete(f"{PREFIX}/images/{{image_id}}", status_code=204, summary="Delete an image")
    def delete_image(image_id: str, caller: Caller, site: SiteDep) -> Response:
        with site.state.lock:
            if _mine(site, caller, image_id)["protected"]:
                raise SimError(403, f"Image {image_id} is protected and cannot be deleted.")
            site.state.delete("image", image_id)
        for path in (_data_path, _stage_path, _part_path):
            path(site, image_id).unlink(missing_ok=True)
        return Response(status_code=204)


def _tag_routes(router: APIRouter) -> None:
    @router.put(f"{PREFIX}/images/{{image_id}}/tags/{{tag}}", status_code=204, summary="Add a tag")
    def add_tag(image_id: str, tag: str, caller: Caller, site: SiteDep) -> Response:
        with site.state.lock:
            image = _mine(site, caller, image_id)
            image["tags"] = _tags("tags", [*image["tags"], tag])
            _store(site, image)
        return Response(status_code=204)

    @router.delete(
        f"{PREFIX}/images/{{image_id}}/tags/{{tag}}", status_code=204, summary="Remove a tag"
    )
    def remove_tag(image_id: str, tag: str, caller: Caller, site: SiteDep) -> Response:
        with site.state.lock:
            image = _mine(site, caller, image_id)
            if tag not in image["tags"]:
                raise SimError(404, f"Tag {tag} not found.")
            image["tags"].remove(tag)
            _store(site, image)
        return Response(status_code=204)


def _data_routes(router: APIRouter) -> None:
    @router.put(f"{PREFIX}/images/{{image_id}}/file", status_code=204, summary="Upload image data")
    async def upload(image_id: str, request: Request, caller: Caller, site: SiteDep) -> Response:
        _require_octet_stream(request)
        _begin(site, caller, image_id, "queued", "saving")
        part = _part_path(site, image_id)
        _activate(site, image_id, await _receive(site, request, image_id, part), part)
        return Response(status_code=204)

    @router.get(f"{PREFIX}/images/{{image_id}}/file", summary="Download image data")
    def download(image_id: str, caller: Caller, site: SiteDep) -> Response:
        image = _find(site, caller, image_id)
        path = image_file(site, image_id)
        if path is None:
            return Response(status_code=204)
        headers = {"Content-MD5": image["checksum"]}
        return FileResponse(path, media_type="application/octet-stream", headers=headers)

    @router.put(f"{PREFIX}/images/{{image_id}}/stage", status_code=204, summary="Stage image data")
    async def stage(image_id: str, request: Request, caller: Caller, site: SiteDep) -> Response:
        _require_octet_stream(request)
        _begin(site, caller, image_id, "queued", "uploading")
        staged = _stage_path(site, image_id)
        _keep_staged(site, image_id, await _receive(site, request, image_id, staged), staged)
        return Response(status_code=204)

    @router.post(f"{PREFIX}/images/{{image_id}}/import", status_code=202, summary="Import data")
    def import_image(image_id: str, body: JsonBody, caller: Caller, site: SiteDep) -> Response:
        _check_import(body)
        digest = _staged_digest(site, caller, image_id)
        _activate(site, image_id, digest, _stage_path(site, image_id))
        return Response(status_code=202)


def routers() -> list[APIRouter]:
    router = APIRouter(tags=["image"])
    for add_routes in (_discovery, _records, _tag_routes, _data_routes):
        add_routes(router)
    return [router]
