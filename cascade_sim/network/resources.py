"""The operations every resource kind shares: create (the request's envelope, the owning
project, attribute checks), load with visibility, update, delete and render; each runs under
``site.state.lock`` and calls the kind's hooks for what is particular to it."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cascade_sim.common import public
from cascade_sim.network.errors import bad, forbidden
from cascade_sim.network.kinds import Actor, Json, Kind
from cascade_sim.network.store import revise, save
from cascade_sim.region import Region
from cascade_sim.state import new_uuid, now_iso


def new_body(kind: Kind, attrs: Json, project_id: str) -> Json:
    now = now_iso()
    body = {key: copy.deepcopy(a.default) for key, a in kind.attrs.items() if a.check}
    body.update(attrs)
    body.update(
        id=new_uuid(),
        project_id=project_id,
        tenant_id=project_id,
        created_at=now,
        updated_at=now,
        revision_number=1,
        tags=[],
        _project_id=project_id,
    )
    return body


@contextmanager
def _released_on_error(site: Region, owner: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        site.state.release(owner)
        raise


def create_resource(site: Region, kind: Kind, actor: Actor, attrs: Json, project_id: str) -> Json:
    """A new body of checked ``attrs``, built by the kind and saved; nothing it allocated on
    the way stays taken if it fails."""
    body = new_body(kind, attrs, project_id)
    with site.state.lock, _released_on_error(site, body["id"]):
        kind.build(site, actor, attrs, body)
        save(site, kind.name, body)
    return body


def load(site: Region, kind: Kind, actor: Actor, resource_id: str) -> Json:
    body = site.state.get(kind.name, resource_id)
    if body is None or not kind.visible(site, actor, body):
        raise kind.missing(resource_id)
    return body


def writable(site: Region, kind: Kind, actor: Actor, resource_id: str) -> Json:
    body = load(site, kind, actor, resource_id)
    if not actor.owns(body):
        raise forbidden(f"rule:update_{kind.name}")
    return body


def _envelope(kind: Kind, raw: Any) -> Json:
    if not isinstance(raw, dict) or not isinstance(raw.get(kind.name), dict):
        raise bad(f"Unable to find '{kind.name}' in request body")
    return dict(raw[kind.name])


def _owner(actor: Actor, given: Json) -> str:
    """The project a new resource belongs to: the caller's, or another one an admin names."""
    named = [given.pop(key) for key in ("project_id", "tenant_id") if key in given]
    if not named:
        return actor.project_id
    owner = named[0]
    if not isinstance(owner, str) or not owner or any(other != owner for other in named):
        raise bad("project_id and tenant_id must be one and the same non-empty string")
    if owner != actor.project_id and not actor.admin:
        raise bad(
            "Specifying 'project_id' or 'tenant_id' other than the authenticated project "
            "in request requires admin privileges"
        )
    return owner


def _checked(kind: Kind, actor: Actor, key: str, value: Any, creating: bool) -> Any:
    attr = kind.attrs[key]
    if attr.check is None or not (attr.post if creating else attr.put):
        raise bad(f"Attribute '{key}' not allowed in {'POST' if creating else 'PUT'}")
    if attr.admin_write and not actor.admin:
        raise forbidden(f"rule:{'create' if creating else 'update'}_{kind.name}:{key}")
    return attr.check(key, value)


def _validated(kind: Kind, actor: Actor, given: Json, creating: bool) -> Json:
    unknown = sorted(set(given) - set(kind.attrs))
    if unknown:
        raise bad(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
    attrs = {key: _checked(kind, actor, key, value, creating) for key, value in given.items()}
    required = [key for key, a in kind.attrs.items() if a.required and key not in attrs]
    if creating and required:
        raise bad(f"Failed to parse request. Required attribute '{required[0]}' not specified")
    return attrs


def create(site: Region, kind: Kind, actor: Actor, raw: Any) -> Json:
    given = _envelope(kind, raw)
    project_id = _owner(actor, given)
    attrs = _validated(kind, actor, given, creating=True)
    return create_resource(site, kind, actor, attrs, project_id)


def update(site: Region, kind: Kind, actor: Actor, resource_id: str, raw: Any) -> Json:
    given = _envelope(kind, raw)
    with site.state.lock:
        body = writable(site, kind, actor, resource_id)
        attrs = _validated(kind, actor, given, creating=False)
        kind.change(site, actor, body, attrs)
        revise(site, kind.name, body)
    return body


def delete(site: Region, kind: Kind, actor: Actor, resource_id: str) -> None:
    with site.state.lock:
        kind.remove(site, actor, writable(site, kind, actor, resource_id))


def render(site: Region, kind: Kind, actor: Actor, bodies: list[Json]) -> list[Json]:
    """The views the actor sees: internal and, for non-admins, admin-only attributes left out,
    computed ones added."""
    hidden = set() if actor.admin else {key for key, a in kind.attrs.items() if a.admin_read}
    views = [{k: v for k, v in public(body).items() if k not in hidden} for body in bodies]
    kind.expand(site, views)
    return views


def render_one(site: Region, kind: Kind, actor: Actor, body: Json) -> Json:
    return render(site, kind, actor, [body])[0]
