"""What a resource kind is: its attributes (how a given value is checked, its default, who
may set or see it), and the hooks that hold what is particular to it; and who acts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cascade.identity import AuthContext
from cascade_sim.common import project_of
from cascade_sim.errors import SimError
from cascade_sim.network import checks
from cascade_sim.network.checks import Check
from cascade_sim.network.errors import error
from cascade_sim.region import Region

PREFIX = "/network/v2.0"
Json = dict[str, Any]


@dataclass(frozen=True)
class Actor:
    """Who acts: a project, with or without the admin role."""

    project_id: str
    admin: bool = False

    def owns(self, body: Json) -> bool:
        return self.admin or body["_project_id"] == self.project_id


SYSTEM = Actor("", admin=True)  # Neutron itself: router, gateway and floating IP ports


def actor_of(caller: AuthContext) -> Actor:
    return Actor(project_of(caller), caller.is_admin)


@dataclass(frozen=True)
class Attr:
    """One attribute of a resource kind; ``check`` None marks it read-only."""

    check: Check | None = None
    default: Any = None
    post: bool = True
    put: bool = True
    required: bool = False
    admin_write: bool = False
    admin_read: bool = False


Build = Callable[[Region, Actor, Json, Json], None]
Change = Callable[[Region, Actor, Json, Json], None]
Remove = Callable[[Region, Actor, Json], None]
Visible = Callable[[Region, Actor, Json], bool]
Expand = Callable[[Region, list[Json]], None]
Prepare = Callable[[Region, Actor], None]


def _assign(_site: Region, _actor: Actor, body: Json, attrs: Json) -> None:
    body.update(attrs)


def _owned(_site: Region, actor: Actor, body: Json) -> bool:
    return actor.owns(body)


def _no_expansion(_site: Region, _views: list[Json]) -> None:
    return None


def _no_preparation(_site: Region, _actor: Actor) -> None:
    return None


@dataclass(frozen=True)
class Kind:
    name: str  # the state kind and the body key
    plural: str  # the collection's key; its URL has hyphens for underscores
    label: str  # for messages: "Floating IP"
    error: str  # Neutron's exception prefix: "FloatingIP" -> FloatingIPNotFound
    attrs: dict[str, Attr]
    build: Build  # fills computed attributes of a new body, validates, allocates
    remove: Remove
    change: Change = _assign
    visible: Visible = _owned
    expand: Expand = _no_expansion  # adds computed attributes to views
    prepare: Prepare = _no_preparation  # runs before a list

    @property
    def path(self) -> str:
        return f"{PREFIX}/{self.plural.replace('_', '-')}"

    def missing(self, resource_id: str) -> SimError:
        message = f"{self.label} {resource_id} could not be found."
        return error(404, f"{self.error}NotFound", message)


STANDARD = {
    "id": Attr(),
    "project_id": Attr(),  # given on create, see resources._owner
    "tenant_id": Attr(),
    "created_at": Attr(),
    "updated_at": Attr(),
    "revision_number": Attr(),
    "tags": Attr(),
    "description": Attr(checks.text(), ""),
}
NAMED = {**STANDARD, "name": Attr(checks.text(), "")}
