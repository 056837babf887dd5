"""Glance's HTTP routes: versions and import discovery, image records, tags, and the data
routes (upload, download whole or a ``Range``, stage, import)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from cascade.api.keystone import Caller
from cascade_sim.common import RegionDep, public
from cascade_sim.errors import SimError
from cascade_sim.image import data, listing, quota, records, web_download
from cascade_sim.image.attributes import tags

PREFIX = "/image/v2"
Json = dict[str, Any]
JsonBody = Annotated[Any, Body()]


class ImageFileResponse(FileResponse):
    """An image's bytes read and sent a MiB at a time (Starlette's default is 64 KiB, a thread
    hop each: a 256 MiB image was 4,096 of them)."""

    chunk_size = 1 << 20


PATCH_TYPES = (
    "application/openstack-images-v2.1-json-patch",
    "application/openstack-images-v2.0-json-patch",
)


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
        return {"import-methods": {**methods, "value": list(data.IMPORT_METHODS)}}


def _records(router: APIRouter) -> None:
    @router.post(f"{PREFIX}/images", status_code=201, summary="Create an image")
    def create_image(body: JsonBody, caller: Caller, site: RegionDep, response: Response) -> Json:
        response.headers["OpenStack-image-import-methods"] = ",".join(data.IMPORT_METHODS)
        return public(records.create(site, caller, body))

    @router.get(f"{PREFIX}/images", summary="List images")
    def list_images(request: Request, caller: Caller, site: RegionDep) -> Json:
        return listing.list_images(site, caller, request)

    @router.get(f"{PREFIX}/images/{{image_id}}", summary="Show an image")
    def show_image(image_id: str, caller: Caller, site: RegionDep) -> Json:
        return public(records.find(site, caller, image_id))

    @router.patch(f"{PREFIX}/images/{{image_id}}", summary="Update an image (JSON patch)")
    async def update_image(
        image_id: str, request: Request, caller: Caller, site: RegionDep
    ) -> Json:
        content_type = data.content_type(request)
        if content_type not in PATCH_TYPES:
            message = f"Unsupported Content-Type {content_type!r}: use {PATCH_TYPES[0]}."
            raise SimError(415, message)
        try:
            operations = json.loads(await request.body())
        except ValueError:
            raise SimError(400, "Malformed JSON in request body.") from None
        with site.state.lock:
            changed = records.patched(caller, records.mine(site, caller, image_id), operations)
            records.store(site, changed)
        return public(changed)

    @router.delete(f"{PREFIX}/images/{{image_id}}", status_code=204, summary="Delete an image")
    def delete_image(image_id: str, caller: Caller, site: RegionDep) -> Response:
        with site.state.lock:
            if records.mine(site, caller, image_id)["protected"]:
                raise SimError(403, f"Image {image_id} is protected and cannot be deleted.")
            site.state.delete("image", image_id)
        data.remove_files(site, image_id)
        return Response(status_code=204)


def _tag_routes(router: APIRouter) -> None:
    @router.put(f"{PREFIX}/images/{{image_id}}/tags/{{tag}}", status_code=204, summary="Add a tag")
    def add_tag(image_id: str, tag: str, caller: Caller, site: RegionDep) -> Response:
        with site.state.lock:
            image = records.mine(site, caller, image_id)
            image["tags"] = tags("tags", [*image["tags"], tag])
            records.store(site, image)
        return Response(status_code=204)

    @router.delete(
        f"{PREFIX}/images/{{image_id}}/tags/{{tag}}", status_code=204, summary="Remove a tag"
    )
    def remove_tag(image_id: str, tag: str, caller: Caller, site: RegionDep) -> Response:
        with site.state.lock:
            image = records.mine(site, caller, image_id)
            if tag not in image["tags"]:
                raise SimError(404, f"Tag {tag} not found.")
            image["tags"].remove(tag)
            records.store(site, image)
        return Response(status_code=204)


def _data_routes(router: APIRouter) -> None:
    @router.put(f"{PREFIX}/images/{{image_id}}/file", status_code=204, summary="Upload image data")
    async def upload(image_id: str, request: Request, caller: Caller, site: RegionDep) -> Response:
        part, digest = await data.receive(
            site, caller, image_id, request, "saving", data.part_path, counted=True
        )
        data.activate(site, image_id, digest, part)
        return Response(status_code=204)

    @router.get(f"{PREFIX}/images/{{image_id}}/file", summary="Download image data")
    def download(image_id: str, request: Request, caller: Caller, site: RegionDep) -> Response:
        image = records.find(site, caller, image_id)
        path = data.image_file(site, image_id)
        if path is None:
            return Response(status_code=204)
        whole = "range" not in request.headers  # a part's md5 is not the image's checksum
        headers = {"Content-MD5": image["checksum"]} if whole else {}
        return ImageFileResponse(path, media_type="application/octet-stream", headers=headers)

    @router.put(f"{PREFIX}/images/{{image_id}}/stage", status_code=204, summary="Stage image data")
    async def stage(image_id: str, request: Request, caller: Caller, site: RegionDep) -> Response:
        staged, digest = await data.receive(
            site, caller, image_id, request, "uploading", data.stage_path, counted=False
        )
        data.keep_staged(site, image_id, digest, staged)
        return Response(status_code=204)

    @router.post(f"{PREFIX}/images/{{image_id}}/import", status_code=202, summary="Import data")
    def import_image(image_id: str, body: JsonBody, caller: Caller, site: RegionDep) -> Response:
        method = data.import_method(body)
        if method["name"] == "web-download":
            web_download.import_from_uri(site, caller, image_id, method)
        else:
            digest = data.staged_digest(site, caller, image_id)
            data.activate(site, image_id, digest, data.stage_path(site, image_id))
        return Response(status_code=202)


def routers() -> list[APIRouter]:
    router = APIRouter(tags=["image"])
    for add_routes in (_discovery, _records, _tag_routes, _data_routes):
        add_routes(router)
    return [router, quota.router]
