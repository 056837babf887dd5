"""List queries, the same for every collection: filters on any visible attribute (tags and
``fixed_ips`` have their own forms), ``fields``, ``sort_key``/``sort_dir``, ``limit`` and
``marker`` with a ``next`` link."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request

from cascade_sim.network.checks import boolean
from cascade_sim.network.errors import bad
from cascade_sim.network.kinds import Actor, Json, Kind
from cascade_sim.network.resources import render
from cascade_sim.region import Region

Query = dict[str, list[str]]

CONTROLS = {"fields", "sort_key", "sort_dir", "limit", "marker"}
TAG_FILTERS: dict[str, Callable[[set[str], set[str]], bool]] = {
    "tags": lambda have, wanted: wanted <= have,
    "tags-any": lambda have, wanted: bool(wanted & have),
    "not-tags": lambda have, wanted: not wanted <= have,
    "not-tags-any": lambda have, wanted: not wanted & have,
}


def grouped(request: Request) -> Query:
    """The query string, each key with all its values."""
    query: Query = {}
    for key, value in request.query_params.multi_items():
        query.setdefault(key, []).append(value)
    return query


def fields(query: Query) -> list[str]:
    return [name for value in query.get("fields", []) for name in value.split(",") if name]


def select(view: Json, names: list[str]) -> Json:
    """The view cut down to the ``fields`` asked for (all of it when none are)."""
    return {key: view[key] for key in names if key in view} if names else view


def _filter_keys(kind: Kind, actor: Actor, keys: list[str]) -> None:
    for key in keys:
        attr = kind.attrs.get(key)
        if attr is None or (attr.admin_read and not actor.admin):
            raise bad(f"'{key}' is not a valid attribute for filtering {kind.plural}")


def _same(key: str, value: Any, text: str) -> bool:
    if isinstance(value, dict | list):
        raise bad(f"'{key}' is not a valid attribute for filtering")
    if isinstance(value, bool):
        return value == boolean(key, text)
    return ("" if value is None else str(value)) == text


def _fixed_ip_matches(fixed: Json, key: str, values: list[str]) -> bool:
    if key == "ip_address_substr":
        return any(value in fixed["ip_address"] for value in values)
    return fixed[key] in values


def _fixed_ips_match(fixed_ips: list[Json], wanted: list[str]) -> bool:
    """``fixed_ips=ip_address=10.0.0.3&fixed_ips=subnet_id=...``: one address matching all."""
    conditions: dict[str, list[str]] = {}
    for text in wanted:
        key, separator, value = text.partition("=")
        if not separator or key not in ("ip_address", "subnet_id", "ip_address_substr"):
            raise bad(f"'{text}' is not a valid fixed_ips filter")
        conditions.setdefault(key, []).append(value)
    return any(
        all(_fixed_ip_matches(fixed, key, values) for key, values in conditions.items())
        for fixed in fixed_ips
    )


def _matches(view: Json, key: str, wanted: list[str]) -> bool:
    value = view.get(key)
    if key in TAG_FILTERS:
        tags = {tag for text in wanted for tag in text.split(",") if tag}
        return TAG_FILTERS[key](set(view["tags"]), tags)
    if key == "fixed_ips":
        return _fixed_ips_match(value or [], wanted)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return any(text in value for text in wanted)
    return any(_same(key, value, text) for text in wanted)


def _sort_value(value: Any) -> tuple[int, Any]:
    """Orders one attribute's values: None first, then numbers, then text."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool | int):
        return (1, value)
    return (2, value if isinstance(value, str) else str(value))


def _by(key: str) -> Callable[[Json], tuple[int, Any]]:
    def sort_key(view: Json) -> tuple[int, Any]:
        return _sort_value(view.get(key))

    return sort_key


def _sorted(kind: Kind, actor: Actor, views: list[Json], query: Query) -> list[Json]:
    keys, directions = query.get("sort_key", []), query.get("sort_dir", [])
    if directions and len(directions) != len(keys):
        raise bad("The number of sort_keys and sort_dirs must be same")
    if any(direction not in ("asc", "desc") for direction in directions):
        raise bad("Sort directions must be 'asc' or 'desc'")
    _filter_keys(kind, actor, keys)
    for key, direction in reversed(list(zip(keys, directions or ["asc"] * len(keys), strict=True))):
        views = sorted(views, key=_by(key), reverse=direction == "desc")
    return views


def _limit(query: Query) -> int | None:
    values = query.get("limit")
    if not values:
        return None
    try:
        limit = int(values[-1])
    except ValueError:
        limit = -1
    if limit < 0:
        raise bad(f"Bad limit request: limit must be a non-negative integer, not {values[-1]}")
    return limit or None


def _page(kind: Kind, views: list[Json], query: Query) -> tuple[list[Json], bool]:
    markers = query.get("marker")
    if markers:
        ids = [view["id"] for view in views]
        if markers[-1] not in ids:
            raise kind.missing(markers[-1])
        views = views[ids.index(markers[-1]) + 1 :]
    limit = _limit(query)
    if limit is None:
        return views, False
    return views[:limit], len(views) > limit


def list_collection(site: Region, kind: Kind, actor: Actor, request: Request) -> Json:
    """``GET <collection>``: what the actor sees, filtered, sorted and paged."""
    query = grouped(request)
    filters = {key: values for key, values in query.items() if key not in CONTROLS}
    _filter_keys(kind, actor, [key for key in filters if key not in TAG_FILTERS])
    kind.prepare(site, actor)
    bodies = [body for body in site.state.list(kind.name) if kind.visible(site, actor, body)]
    views = render(site, kind, actor, bodies)
    views = [v for v in views if all(_matches(v, key, wanted) for key, wanted in filters.items())]
    page, more = _page(kind, _sorted(kind, actor, views, query), query)
    names = fields(query)
    result: Json = {kind.plural: [select(view, names) for view in page]}
    if more:
        following = request.url.include_query_params(marker=page[-1]["id"])
        result[f"{kind.plural}_links"] = [{"rel": "next", "href": str(following)}]
    return result
