"""Listing images as Glance does: its default visibility, filters on any attribute (one value
or an ``in:`` list, ``id=in:a,b``), ``tag``, ``size_min``/``size_max``, ``os_hidden``,
sorting (``sort`` or ``sort_key``/``sort_dir``, newest first by default) and
``limit``/``marker`` with ``first`` and ``next`` links."""

from __future__ import annotations

import csv
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import Request

from cascade.identity import AuthContext
from cascade_sim.common import project_of, public
from cascade_sim.errors import SimError
from cascade_sim.image.attributes import VISIBILITIES
from cascade_sim.image.records import visible
from cascade_sim.region import Region

Json = dict[str, Any]
Query = dict[str, list[str]]

SORT_KEYS = {
    "name", "status", "container_format", "disk_format", "size", "virtual_size", "id",
    "created_at", "updated_at", "visibility", "owner", "min_disk", "min_ram",
}  # fmt: skip
LIST_CONTROLS = {"limit", "marker", "sort", "sort_key", "sort_dir", "visibility", "tag"}
LIST_CONTROLS |= {"size_min", "size_max", "os_hidden"}
DEFAULT_LIMIT, MAX_LIMIT = 25, 1000


def _grouped(request: Request) -> Query:
    grouped: Query = {}
    for key, value in request.query_params.multi_items():
        grouped.setdefault(key, []).append(value)
    return grouped


def _listed(caller: AuthContext, image: Json, visibility: str | None) -> bool:
    """Glance's default list: public images and the project's own (not others' community)."""
    if visibility is None:
        mine = image["owner"] == project_of(caller)
        return caller.is_admin or mine or image["visibility"] == "public"
    wanted = visibility in ("all", image["visibility"])
    return wanted and visible(caller, image)


def _same(value: Any, text: str) -> bool:
    if isinstance(value, bool):
        return str(value).lower() == text.lower()
    return value is not None and str(value) == text


def _matches(value: Any, text: str) -> bool:
    """Glance's filter value: ``in:a,b,"c,d"`` (any of them) or one exact value."""
    if not text.startswith("in:"):
        return _same(value, text)
    return any(_same(value, choice) for choice in _choices(text[3:]))


def _choices(text: str) -> list[str]:
    """The comma-separated values of an ``in:`` filter; a value in double quotes may hold
    commas."""
    try:
        row = next(csv.reader([text], skipinitialspace=True))
    except csv.Error as error:
        raise SimError(400, f"Invalid filter value {text!r}: {error}") from None
    return [choice for choice in row if choice]


def _number(query: Query, key: str) -> int | None:
    if key not in query:
        return None
    try:
        return int(query[key][-1])
    except ValueError:
        raise SimError(400, f"{key} param must be an integer") from None


def _within_size(image: Json, query: Query) -> bool:
    low, high = _number(query, "size_min"), _number(query, "size_max")
    if low is None and high is None:
        return True
    size = image["size"]
    return size is not None and (low is None or size >= low) and (high is None or size <= high)


def _passes(image: Json, query: Query) -> bool:
    hidden = query.get("os_hidden", ["false"])[-1].lower() == "true"
    if image["os_hidden"] != hidden or not set(query.get("tag", [])) <= set(image["tags"]):
        return False
    others = {key: values for key, values in query.items() if key not in LIST_CONTROLS}
    matches = all(_matches(image.get(key), values[-1]) for key, values in others.items())
    return matches and _within_size(image, query)


def _sort_spec(query: Query) -> list[tuple[str, str]]:
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


def _sorted(images: list[Json], query: Query) -> list[Json]:
    for key, direction in reversed(_sort_spec(query)):
        images = sorted(images, key=_by(key), reverse=direction == "desc")
    return images


def _limit(query: Query) -> int:
    limit = _number(query, "limit")
    if limit is not None and limit < 0:
        raise SimError(400, "limit param must be positive")
    return DEFAULT_LIMIT if limit is None else min(limit, MAX_LIMIT)


def list_images(site: Region, caller: AuthContext, request: Request) -> Json:
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
