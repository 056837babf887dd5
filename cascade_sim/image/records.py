"""Image records in the site state: who sees and who may change an image, a new record with
Glance's defaults, and JSON-patch updates (``add``, ``replace``, ``remove``)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from cascade.identity import AuthContext
from cascade_sim.common import project_of, public
from cascade_sim.errors import SimError
from cascade_sim.image.attributes import CORE, READ_ONLY, checked, guard, invalid
from cascade_sim.region import Region
from cascade_sim.state import now_iso

Json = dict[str, Any]


def visible(caller: AuthContext, image: Json) -> bool:
    mine = image["owner"] == project_of(caller)
    return caller.is_admin or mine or image["visibility"] in ("public", "community")


def find(site: Region, caller: AuthContext, image_id: str) -> Json:
    image = site.state.get("image", image_id)
    if image is None or not visible(caller, image):
        raise SimError(404, f"No image found with ID {image_id}")
    return image


def mine(site: Region, caller: AuthContext, image_id: str) -> Json:
    """An image the caller may change: its project's, or any for an admin."""
    image = find(site, caller, image_id)
    if not (caller.is_admin or image["owner"] == project_of(caller)):
        raise SimError(403, f"You are not permitted to modify image {image_id}.")
    return image


def store(site: Region, image: Json) -> None:
    image["_project_id"] = image["owner"]
    image["updated_at"] = now_iso()
    site.state.put("image", image, image["owner"])


def get_image(site: Region, image_id: str) -> dict[str, Any] | None:
    image = site.state.get("image", image_id)
    return public(image) if image is not None else None


def _new_id(site: Region, wanted: Any) -> str:
    if wanted is None:
        return str(uuid.uuid4())
    try:
        image_id = str(uuid.UUID(wanted))
    except (TypeError, ValueError, AttributeError):
        raise invalid("id", wanted, "a UUID") from None
    if site.state.get("image", image_id) is not None:
        raise SimError(409, f"Image with identifier {image_id} already exists!")
    return image_id


def create(site: Region, caller: AuthContext, raw: Any) -> Json:
    if not isinstance(raw, dict):
        raise SimError(400, "The request body must be a JSON object of image attributes.")
    given = dict(raw)
    image_id = _new_id(site, given.pop("id", None))
    attrs = {key: checked(caller, key, value) for key, value in given.items()}
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
    store(site, image)
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
        given = checked(caller, key, value)
        if op == "replace" and key not in CORE and key not in image:
            raise SimError(409, f"Property {key} does not exist.")
        image[key] = given
        return
    guard(key)
    if key in CORE:
        raise SimError(403, f"Property {key} may not be removed.")
    if key not in image:
        raise SimError(409, f"Property {key} does not exist.")
    del image[key]


def patched(caller: AuthContext, image: Json, operations: Any) -> Json:
    """A copy of the image with the JSON-patch operations applied, all or none."""
    if not isinstance(operations, list):
        raise SimError(400, "The request body must be a JSON array of patch operations.")
    changed = copy.deepcopy(image)
    for raw in operations:
        _apply(caller, changed, *_operation(raw))
    return changed
