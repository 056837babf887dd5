"""Neutron v2.0 at ``/network``: networks with provider attributes, subnets and their IP
allocation, ports (fixed IPs, MACs, bindings, security groups), security groups and rules,
routers (external gateway, interfaces, extra routes), floating IPs and tags; and the port
functions the compute service calls to plug servers in.

Each resource kind is described once (its attributes: how a given value is checked, its
default, who may set or see it) and served by one CRUD router with Neutron's filters,
``fields``, sorting and ``limit``/``marker``; what is particular to a kind lives in its build,
change and remove hooks. IPs (per subnet), MACs and segmentation ids are taken through
``site.state.allocate`` so they never collide; every change runs under ``site.state.lock``.
"""

from __future__ import annotations

import copy
import ipaddress
import itertools
import re
import secrets
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response

from cascade.api.deps import Caller
from cascade.identity.tokens import AuthContext
from cascade.sites.sim.common import SiteDep, project_of, public
from cascade.sites.sim.errors import SimError
from cascade.sites.sim.site import Site
from cascade.sites.sim.state import new_uuid, now_iso

PREFIX = "/network/v2.0"
Json = dict[str, Any]
JsonBody = Annotated[Any, Body()]
Check = Callable[[str, Any], Any]

ROUTER_INTERFACE = "network:router_interface"
ROUTER_GATEWAY = "network:router_gateway"
FLOATING_IP = "network:floatingip"
DHCP = "network:dhcp"
SERVICE_OWNERS = (ROUTER_INTERFACE, ROUTER_GATEWAY, FLOATING_IP)
MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
# network type -> (lowest segmentation id, highest, default MTU); flat networks have none
SEGMENTS = {"vxlan": (1, 16777215, 1450), "vlan": (1, 4094, 1500), "flat": (0, 0, 1500)}
PROTOCOLS = {
    "ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "icmp": 1, "icmpv6": 58, "igmp": 2,
    "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58, "ipv6-nonxt": 59,
    "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89, "pgm": 113, "rsvp": 46, "sctp": 132,
    "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112,
}  # fmt: skip
PORT_PROTOCOLS = {6, 17, 33, 132, 136}
ICMP_PROTOCOLS = {1, 58}
IPV6_ONLY_PROTOCOLS = {41, 43, 44, 58, 59, 60}


@dataclass(frozen=True)
class Actor:
    """Who acts: a project, with or without the admin role."""

    project_id: str
    admin: bool = False

    def owns(self, body: Json) -> bool:
        return self.admin or body["_project_id"] == self.project_id


SYSTEM = Actor("", admin=True)  # Neutron itself: router, gateway and floating IP ports


def _actor(caller: AuthContext) -> Actor:
    return Actor(project_of(caller), caller.is_admin)


# -- errors ----------------------------------------------------------------------------------


def _error(status: int, neutron_type: str, message: str) -> SimError:
    return SimError(status, message, neutron_type=neutron_type)


def _bad(message: str, neutron_type: str = "HTTPBadRequest") -> SimError:
    return _error(400, neutron_type, message)


def _invalid(attr: str, reason: str) -> SimError:
    return _bad(f"Invalid input for {attr}. Reason: {reason}.")


def _forbidden(rule: str) -> SimError:
    return _error(403, "PolicyNotAuthorized", f"({rule}) is disallowed by policy")


# -- attribute checks: each validates a given value and returns it normalised ----------------


def _text(limit: int = 255) -> Check:
    def check(attr: str, value: Any) -> str:
        if not isinstance(value, str) or len(value) > limit:
            raise _invalid(attr, f"'{value}' is not a string of at most {limit} characters")
        return value

    return check


def _boolean(attr: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _invalid(attr, f"'{value}' cannot be converted to boolean")


def _integer(low: int, high: int) -> Check:
    def check(attr: str, value: Any) -> int:
        try:
            number = int(value) if isinstance(value, int | str) else None
        except ValueError:
            number = None
        if isinstance(value, bool) or number is None or not low <= number <= high:
            raise _invalid(attr, f"'{value}' is not an integer from {low} to {high}")
        return number

    return check


def _choice(*values: Any) -> Check:
    def check(attr: str, value: Any) -> Any:
        if isinstance(value, bool) or value not in values:
            raise _invalid(attr, f"'{value}' is not one of {list(values)}")
        return value

    return check


def _nullable(inner: Check) -> Check:
    def check(attr: str, value: Any) -> Any:
        return None if value is None else inner(attr, value)

    return check


def _uuid(attr: str, value: Any) -> str:
    try:
        return str(uuid.UUID(value))
    except (TypeError, ValueError, AttributeError):
        raise _invalid(attr, f"'{value}' is not a valid UUID") from None


def _ip(attr: str, value: Any) -> str:
    try:
        return str(ipaddress.ip_address(value if isinstance(value, str) else ""))
    except ValueError:
        raise _invalid(attr, f"'{value}' is not a valid IP address") from None


def _prefix(attr: str, value: Any) -> str:
    try:
        return str(ipaddress.ip_network(value if isinstance(value, str) else "", strict=False))
    except ValueError:
        raise _invalid(attr, f"'{value}' is not a valid IP prefix") from None


def _cidr(attr: str, value: Any) -> str:
    normalised = _prefix(attr, value)
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        reason = f"'{value}' isn't a recommended CIDR, it should be {normalised}"
        raise _invalid(attr, reason) from None
    return normalised


def _mac(attr: str, value: Any) -> str:
    text = value.lower() if isinstance(value, str) else ""
    if not MAC.fullmatch(text) or int(text[:2], 16) & 1 or text == "00:00:00:00:00:00":
        raise _invalid(attr, f"'{value}' is not a valid unicast MAC address")
    return text


def _dict(attr: str, value: Any) -> Json:
    if not isinstance(value, dict):
        raise _invalid(attr, f"'{value}' is not a dictionary")
    return value


def _list_of(item: Check) -> Check:
    def check(attr: str, value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise _invalid(attr, f"'{value}' is not a list")
        return [item(attr, element) for element in value]

    return check


def _record(required: dict[str, Check], optional: dict[str, Check] | None = None) -> Check:
    """A dictionary with the ``required`` keys and perhaps some ``optional`` ones."""
    allowed = {**required, **(optional or {})}

    def check(attr: str, value: Any) -> Json:
        given = set(_dict(attr, value))
        if given - set(allowed) or set(required) - given:
            raise _invalid(
                attr, f"'{value}' needs keys {sorted(required)} and may have {sorted(allowed)}"
            )
        return {key: allowed[key](attr, element) for key, element in value.items()}

    return check


def _protocol(attr: str, value: Any) -> str | None:
    text = str(value).lower() if isinstance(value, int | str) else ""
    if value is None or text == "any":
        return None
    if text in PROTOCOLS or (text.isdigit() and int(text) <= 255):
        return text
    raise _bad(
        f"Security group rule protocol {value} not supported. Only protocol values "
        f"{sorted(PROTOCOLS)} and integer representations [0 to 255] are supported.",
        "SecurityGroupRuleInvalidProtocol",
    )


FIXED_IP = _record({}, {"subnet_id": _uuid, "ip_address": _ip})
ROUTE = _record({"destination": _prefix, "nexthop": _ip})
PORT_NUMBER = _nullable(_integer(0, 65535))
IPV6_MODE = _nullable(_choice("slaac", "dhcpv6-stateful", "dhcpv6-stateless"))


# -- resource kinds --------------------------------------------------------------------------


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


Build = Callable[[Site, Actor, Json, Json], None]
Change = Callable[[Site, Actor, Json, Json], None]
Remove = Callable[[Site, Actor, Json], None]
Visible = Callable[[Site, Actor, Json], bool]
Expand = Callable[[Site, list[Json]], None]
Prepare = Callable[[Site, Actor], None]


def _assign(_site: Site, _actor: Actor, body: Json, attrs: Json) -> None:
    body.update(attrs)


def _owned(_site: Site, actor: Actor, body: Json) -> bool:
    return actor.owns(body)


def _no_expansion(_site: Site, _views: list[Json]) -> None:
    return None


def _no_preparation(_site: Site, _actor: Actor) -> None:
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
        return _error(404, f"{self.error}NotFound", message)


STANDARD = {
    "id": Attr(),
    "project_id": Attr(),  # given on create, see _owner
    "tenant_id": Attr(),
    "created_at": Attr(),
    "updated_at": Attr(),
    "revision_number": Attr(),
    "tags": Attr(),
    "description": Attr(_text(), ""),
}
NAMED = {**STANDARD, "name": Attr(_text(), "")}


# -- the generic resource operations ---------------------------------------------------------


def _new_body(kind: Kind, attrs: Json, project_id: str) -> Json:
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


def _touch(body: Json) -> None:
    body["revision_number"] += 1
    body["updated_at"] = now_iso()


def _save(site: Site, kind: Kind, body: Json) -> None:
    site.state.put(kind.name, body, body["_project_id"])


def _drop(site: Site, kind: Kind, body: Json) -> None:
    site.state.delete(kind.name, body["id"])
    site.state.release(body["id"])


@contextmanager
def _released_on_error(site: Site, owner: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        site.state.release(owner)
        raise


def _create_resource(site: Site, kind: Kind, actor: Actor, attrs: Json, project_id: str) -> Json:
    body = _new_body(kind, attrs, project_id)
    with site.state.lock, _released_on_error(site, body["id"]):
        kind.build(site, actor, attrs, body)
        _save(site, kind, body)
    return body


def _load(site: Site, kind: Kind, actor: Actor, resource_id: str) -> Json:
    body = site.state.get(kind.name, resource_id)
    if body is None or not kind.visible(site, actor, body):
        raise kind.missing(resource_id)
    return body


def _writable(site: Site, kind: Kind, actor: Actor, resource_id: str) -> Json:
    body = _load(site, kind, actor, resource_id)
    if not actor.owns(body):
        raise _forbidden(f"rule:update_{kind.name}")
    return body


def _envelope(kind: Kind, raw: Any) -> Json:
    if not isinstance(raw, dict) or not isinstance(raw.get(kind.name), dict):
        raise _bad(f"Unable to find '{kind.name}' in request body")
    return dict(raw[kind.name])


def _owner(actor: Actor, given: Json) -> str:
    """The project a new resource belongs to: the caller's, or another one an admin names."""
    named = [given.pop(key) for key in ("project_id", "tenant_id") if key in given]
    if not named:
        return actor.project_id
    owner = named[0]
    if not isinstance(owner, str) or not owner or any(other != owner for other in named):
        raise _bad("project_id and tenant_id must be one and the same non-empty string")
    if owner != actor.project_id and not actor.admin:
        raise _bad(
            "Specifying 'project_id' or 'tenant_id' other than the authenticated project "
            "in request requires admin privileges"
        )
    return owner


def _checked(kind: Kind, actor: Actor, key: str, value: Any, creating: bool) -> Any:
    attr = kind.attrs[key]
    if attr.check is None or not (attr.post if creating else attr.put):
        raise _bad(f"Attribute '{key}' not allowed in {'POST' if creating else 'PUT'}")
    if attr.admin_write and not actor.admin:
        raise _forbidden(f"rule:{'create' if creating else 'update'}_{kind.name}:{key}")
    return attr.check(key, value)


def _validated(kind: Kind, actor: Actor, given: Json, creating: bool) -> Json:
    unknown = sorted(set(given) - set(kind.attrs))
    if unknown:
        raise _bad(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
    attrs = {key: _checked(kind, actor, key, value, creating) for key, value in given.items()}
    required = [key for key, a in kind.attrs.items() if a.required and key not in attrs]
    if creating and required:
        raise _bad(f"Failed to parse request. Required attribute '{required[0]}' not specified")
    return attrs


def _create(site: Site, kind: Kind, actor: Actor, raw: Any) -> Json:
    given = _envelope(kind, raw)
    project_id = _owner(actor, given)
    attrs = _validated(kind, actor, given, creating=True)
    return _create_resource(site, kind, actor, attrs, project_id)


def _update(site: Site, kind: Kind, actor: Actor, resource_id: str, raw: Any) -> Json:
    given = _envelope(kind, raw)
    with site.state.lock:
        body = _writable(site, kind, actor, resource_id)
        attrs = _validated(kind, actor, given, creating=False)
        kind.change(site, actor, body, attrs)
        _touch(body)
        _save(site, kind, body)
    return body


def _delete(site: Site, kind: Kind, actor: Actor, resource_id: str) -> None:
    with site.state.lock:
        kind.remove(site, actor, _writable(site, kind, actor, resource_id))


def _render(site: Site, kind: Kind, actor: Actor, bodies: list[Json]) -> list[Json]:
    hidden = set() if actor.admin else {key for key, a in kind.attrs.items() if a.admin_read}
    views = [{k: v for k, v in public(body).items() if k not in hidden} for body in bodies]
    kind.expand(site, views)
    return views


# -- list queries: filters, fields, sorting, pagination --------------------------------------

CONTROLS = {"fields", "sort_key", "sort_dir", "limit", "marker"}
TAG_FILTERS: dict[str, Callable[[set[str], set[str]], bool]] = {
    "tags": lambda have, wanted: wanted <= have,
    "tags-any": lambda have, wanted: bool(wanted & have),
    "not-tags": lambda have, wanted: not wanted <= have,
    "not-tags-any": lambda have, wanted: not wanted & have,
}


def _grouped(request: Request) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        grouped.setdefault(key, []).append(value)
    return grouped


def _fields(query: dict[str, list[str]]) -> list[str]:
    return [name for value in query.get("fields", []) for name in value.split(",") if name]


def _select(view: Json, fields: list[str]) -> Json:
    return {key: view[key] for key in fields if key in view} if fields else view


def _filter_keys(kind: Kind, actor: Actor, keys: list[str]) -> None:
    for key in keys:
        attr = kind.attrs.get(key)
        if attr is None or (attr.admin_read and not actor.admin):
            raise _bad(f"'{key}' is not a valid attribute for filtering {kind.plural}")


def _same(key: str, value: Any, text: str) -> bool:
    if isinstance(value, dict | list):
        raise _bad(f"'{key}' is not a valid attribute for filtering")
    if isinstance(value, bool):
        return value == _boolean(key, text)
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
            raise _bad(f"'{text}' is not a valid fixed_ips filter")
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


def _sorted(kind: Kind, actor: Actor, views: list[Json], query: dict[str, list[str]]) -> list[Json]:
    keys, directions = query.get("sort_key", []), query.get("sort_dir", [])
    if directions and len(directions) != len(keys):
        raise _bad("The number of sort_keys and sort_dirs must be same")
    if any(direction not in ("asc", "desc") for direction in directions):
        raise _bad("Sort directions must be 'asc' or 'desc'")
    _filter_keys(kind, actor, keys)
    for key, direction in reversed(list(zip(keys, directions or ["asc"] * len(keys), strict=True))):
        views = sorted(views, key=_by(key), reverse=direction == "desc")
    return views


def _limit(query: dict[str, list[str]]) -> int | None:
    values = query.get("limit")
    if not values:
        return None
    try:
        limit = int(values[-1])
    except ValueError:
        limit = -1
    if limit < 0:
        raise _bad(f"Bad limit request: limit must be a non-negative integer, not {values[-1]}")
    return limit or None


def _page(kind: Kind, views: list[Json], query: dict[str, list[str]]) -> tuple[list[Json], bool]:
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


def _list(site: Site, kind: Kind, actor: Actor, request: Request) -> Json:
    query = _grouped(request)
    filters = {key: values for key, values in query.items() if key not in CONTROLS}
    _filter_keys(kind, actor, [key for key in filters if key not in TAG_FILTERS])
    kind.prepare(site, actor)
    bodies = [body for body in site.state.list(kind.name) if kind.visible(site, actor, body)]
    views = _render(site, kind, actor, bodies)
    views = [v for v in views if all(_matches(v, key, wanted) for key, wanted in filters.items())]
    page, more = _page(kind, _sorted(kind, actor, views, query), query)
    fields = _fields(query)
    result: Json = {kind.plural: [_select(view, fields) for view in page]}
    if more:
        following = request.url.include_query_params(marker=page[-1]["id"])
        result[f"{kind.plural}_links"] = [{"rel": "next", "href": str(following)}]
    return result


# -- addresses -------------------------------------------------------------------------------


def _network_of(site: Site, body: Json) -> Json:
    network = site.state.get("network", body["network_id"])
    if network is None:
        raise NETWORK.missing(body["network_id"])
    return network


def _subnet_bodies(site: Site, subnet_ids: list[str]) -> list[Json]:
    found = (site.state.get("subnet", subnet_id) for subnet_id in subnet_ids)
    return [subnet for subnet in found if subnet is not None]


def _subnets(site: Site, network: Json) -> list[Json]:
    return _subnet_bodies(site, network["subnets"])


def _ports_where(site: Site, **match: Any) -> list[Json]:
    ports = site.state.list("port")
    return [port for port in ports if all(port[key] == value for key, value in match.items())]


def _address(version: int, number: int) -> str:
    return str(ipaddress.IPv4Address(number) if version == 4 else ipaddress.IPv6Address(number))


def _host_range(cidr: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, int]:
    """The usable addresses: not the network address, nor IPv4's broadcast address."""
    last = int(cidr.broadcast_address) - (1 if cidr.version == 4 else 0)
    return int(cidr.network_address) + 1, last


def _is_host(subnet: Json, address: str) -> bool:
    cidr = ipaddress.ip_network(subnet["cidr"])
    first, last = _host_range(cidr)
    number = ipaddress.ip_address(address)
    return number.version == cidr.version and first <= int(number) <= last


def _pool_ranges(subnet: Json) -> list[tuple[int, int]]:
    pools = subnet["allocation_pools"]
    return [
        (int(ipaddress.ip_address(p["start"])), int(ipaddress.ip_address(p["end"]))) for p in pools
    ]


def _ip_scope(subnet_id: str) -> str:
    return f"ip:{subnet_id}"


def _free_ip(site: Site, subnet: Json, owner: str) -> str | None:
    scope = _ip_scope(subnet["id"])
    taken = site.state.taken(scope)
    for first, last in _pool_ranges(subnet):
        for number in range(first, last + 1):
            address = _address(subnet["ip_version"], number)
            if address not in taken and site.state.allocate(scope, address, owner):
                return address
    return None


def _exhausted(network: Json) -> SimError:
    message = f"No more IP addresses available on network {network['id']}."
    return _error(409, "IpAddressGenerationFailure", message)


def _auto_ips(site: Site, network: Json, subnets: list[Json], owner: str) -> list[Json]:
    """One address of each IP version the network has, from its first subnet with room."""
    taken = []
    for version in sorted({subnet["ip_version"] for subnet in subnets}):
        for subnet in (s for s in subnets if s["ip_version"] == version):
            address = _free_ip(site, subnet, owner)
            if address is not None:
                taken.append({"subnet_id": subnet["id"], "ip_address": address})
                break
        else:
            raise _exhausted(network)
    return taken


def _subnet_for(network: Json, subnets: list[Json], wanted: Json) -> Json:
    if "subnet_id" in wanted:
        for subnet in subnets:
            if subnet["id"] == wanted["subnet_id"]:
                return subnet
        raise _bad(
            f"Failed to create port on network {network['id']}, because fixed_ips included "
            f"invalid subnet {wanted['subnet_id']}.",
            "InvalidInput",
        )
    if "ip_address" not in wanted:
        raise _invalid("fixed_ips", "each entry needs a subnet_id or an ip_address")
    for subnet in subnets:
        if ipaddress.ip_address(wanted["ip_address"]) in ipaddress.ip_network(subnet["cidr"]):
            return subnet
    raise _bad(
        f"IP address {wanted['ip_address']} is not a valid IP for any of the subnets on the "
        "specified network.",
        "InvalidIpForNetwork",
    )


def _take_ip(site: Site, network: Json, subnets: list[Json], owner: str, wanted: Json) -> Json:
    subnet = _subnet_for(network, subnets, wanted)
    address = wanted.get("ip_address")
    if address is None:
        address = _free_ip(site, subnet, owner)
        if address is None:
            raise _exhausted(network)
    elif not _is_host(subnet, address):
        message = f"IP address {address} is not a valid IP for the specified subnet."
        raise _bad(message, "InvalidIpForSubnet")
    elif not site.state.allocate(_ip_scope(subnet["id"]), address, owner):
        message = f"IP address {address} already allocated in subnet {subnet['id']}"
        raise _error(409, "IpAddressAlreadyAllocated", message)
    return {"subnet_id": subnet["id"], "ip_address": address}


def _take_ips(site: Site, network: Json, owner: str, wanted: list[Json] | None) -> list[Json]:
    """The fixed IPs asked for (``None``: automatic), taken for ``owner``."""
    subnets = _subnets(site, network)
    if wanted is None:
        return _auto_ips(site, network, subnets, owner)
    explicit = [item["ip_address"] for item in wanted if "ip_address" in item]
    if len(explicit) != len(set(explicit)):
        raise _invalid("fixed_ips", "an IP address is requested twice")
    return [_take_ip(site, network, subnets, owner, item) for item in wanted]


def _release_ips(site: Site, network: Json, owner: str) -> None:
    for subnet_id in network["subnets"]:
        site.state.release(owner, _ip_scope(subnet_id))


def _retake_ips(site: Site, network: Json, port: Json, wanted: list[Json]) -> list[Json]:
    """Replace a port's fixed IPs; on failure it keeps the ones it had."""
    _release_ips(site, network, port["id"])
    try:
        return _take_ips(site, network, port["id"], wanted)
    except SimError:
        _release_ips(site, network, port["id"])
        for fixed in port["fixed_ips"]:
            site.state.allocate(_ip_scope(fixed["subnet_id"]), fixed["ip_address"], port["id"])
        raise


def _take_mac(site: Site, port: Json, network: Json) -> str:
    wanted = port["mac_address"]
    if wanted is not None:
        if not site.state.allocate("mac", wanted, port["id"]):
            message = (
                f"Unable to complete operation for network {network['id']}. "
                f"The mac address {wanted} is in use."
            )
            raise _error(409, "MacAddressInUse", message)
        return str(wanted)
    for _attempt in range(64):
        mac = "fa:16:3e:" + ":".join(f"{octet:02x}" for octet in secrets.token_bytes(3))
        if site.state.allocate("mac", mac, port["id"]):
            return mac
    raise _error(409, "MacAddressGenerationFailure", "Unable to generate a unique mac.")


# -- networks --------------------------------------------------------------------------------


def _segment_in_use(network_type: str, physnet: str | None, value: int) -> SimError:
    if network_type == "vxlan":
        message = f"Unable to create the network. The tunnel ID {value} is in use."
        return _error(409, "TunnelIdInUse", message)
    if network_type == "vlan":
        message = (
            f"Unable to create the network. The VLAN {value} on physical network "
            f"{physnet} is in use."
        )
        return _error(409, "VlanIdInUse", message)
    message = f"Unable to create the flat network. Physical network {physnet} is in use."
    return _error(409, "FlatNetworkInUse", message)


def _free_segment(site: Site, scope: str, low: int, high: int, owner: str) -> int:
    taken = site.state.taken(scope)
    for value in range(low, high + 1):
        if str(value) not in taken and site.state.allocate(scope, str(value), owner):
            return value
    message = "Unable to create the network. No tenant network is available for allocation."
    raise _error(503, "NoNetworkAvailable", message)


def _take_segment(site: Site, network: Json) -> None:
    """Sets the provider attributes: a VNI (scope ``vni``), a VLAN per physical network, or
    the physical network itself for a flat network, each unique on the site."""
    network_type = network["provider:network_type"] or "vxlan"
    physnet, wanted = network["provider:physical_network"], network["provider:segmentation_id"]
    low, high, _mtu = SEGMENTS[network_type]
    if network_type == "vxlan" and physnet is not None:
        raise _invalid("provider:physical_network", "a vxlan network has no physical network")
    if network_type == "flat" and wanted is not None:
        raise _invalid("provider:segmentation_id", "a flat network has no segmentation id")
    if wanted is not None and not low <= wanted <= high:
        raise _invalid("provider:segmentation_id", f"{wanted} is not in {low}..{high}")
    physnet = None if network_type == "vxlan" else physnet or "physnet1"
    scope = "vni" if network_type == "vxlan" else f"{network_type}:{physnet}"
    if wanted is None:
        wanted = _free_segment(site, scope, low, high, network["id"])
    elif not site.state.allocate(scope, str(wanted), network["id"]):
        raise _segment_in_use(network_type, physnet, wanted)
    network.update(
        {
            "provider:network_type": network_type,
            "provider:physical_network": physnet,
            "provider:segmentation_id": None if network_type == "flat" else wanted,
        }
    )


def _check_mtu(network: Json) -> None:
    largest = SEGMENTS[network["provider:network_type"]][2]
    if network["mtu"] is None:
        network["mtu"] = largest
    elif network["mtu"] > largest:
        raise _invalid("mtu", f"Requested MTU is too big, maximum is {largest}")


def _build_network(site: Site, _actor: Actor, _attrs: Json, network: Json) -> None:
    _take_segment(site, network)
    _check_mtu(network)
    network.update(status="ACTIVE", subnets=[], availability_zones=["nova"])


def _change_network(_site: Site, _actor: Actor, network: Json, attrs: Json) -> None:
    network.update(attrs)
    _check_mtu(network)


def _network_visible(_site: Site, actor: Actor, network: Json) -> bool:
    return actor.owns(network) or bool(network["shared"] or network["router:external"])


def _remove_network(site: Site, _actor: Actor, network: Json) -> None:
    ports = _ports_where(site, network_id=network["id"])
    if any(port["device_owner"] != DHCP for port in ports):
        message = (
            f"Unable to complete operation on network {network['id']}. "
            "There are one or more ports still in use on the network."
        )
        raise _error(409, "NetworkInUse", message)
    for port in ports:
        _drop_port(site, port)
    for subnet in _subnets(site, network):
        _drop(site, SUBNET, subnet)
    _drop(site, NETWORK, network)


def _usable_network(site: Site, actor: Actor, network_id: str, project_id: str) -> Json:
    """A network ``project_id`` may plug a port into: its own or a shared one."""
    network = _load(site, NETWORK, actor, network_id)
    if not (actor.admin or network["_project_id"] == project_id or network["shared"]):
        raise _forbidden("rule:create_port")
    return network


# -- subnets ---------------------------------------------------------------------------------


def _subnet_visible(site: Site, actor: Actor, subnet: Json) -> bool:
    return actor.owns(subnet) or bool(_network_of(site, subnet)["shared"])


def _default_pools(subnet: Json) -> list[Json]:
    """Every usable address of the CIDR but the gateway, as Neutron's default pools."""
    first, last = _host_range(ipaddress.ip_network(subnet["cidr"]))
    gateway = int(ipaddress.ip_address(subnet["gateway_ip"])) if subnet["gateway_ip"] else None
    ranges = [(first, last)]
    if gateway is not None and first <= gateway <= last:
        ranges = [(first, gateway - 1), (gateway + 1, last)]
    version = subnet["ip_version"]
    return [
        {"start": _address(version, low), "end": _address(version, high)}
        for low, high in ranges
        if low <= high
    ]


def _check_pools(subnet: Json) -> None:
    for pool, (low, high) in zip(subnet["allocation_pools"], _pool_ranges(subnet), strict=True):
        inside = _is_host(subnet, pool["start"]) and _is_host(subnet, pool["end"])
        if not inside or low > high:
            message = (
                f"The allocation pool {pool['start']}-{pool['end']} spans beyond the subnet "
                f"cidr {subnet['cidr']}."
            )
            raise _bad(message, "OutOfBoundsAllocationPool")
    ranges = sorted(_pool_ranges(subnet))
    if any(low <= high for (_, high), (low, _) in itertools.pairwise(ranges)):
        raise _bad("Found overlapping allocation pools.", "OverlappingAllocationPools")
    gateway = subnet["gateway_ip"]
    if gateway and any(low <= int(ipaddress.ip_address(gateway)) <= high for low, high in ranges):
        message = f"Gateway ip {gateway} conflicts with allocation pool."
        raise _error(409, "GatewayConflictWithAllocationPools", message)


def _check_layout(subnet: Json) -> None:
    """Gateway, pools, routes and name servers against the CIDR."""
    cidr = ipaddress.ip_network(subnet["cidr"])
    first, last = _host_range(cidr)
    if first > last:
        raise _invalid("cidr", f"{cidr} has no room for hosts")
    if subnet["gateway_ip"] and not _is_host(subnet, subnet["gateway_ip"]):
        raise _invalid("gateway_ip", f"{subnet['gateway_ip']} is not a host address of {cidr}")
    _check_pools(subnet)
    for route in subnet["host_routes"]:
        versions = {ipaddress.ip_network(route["destination"]).version}
        if versions | {ipaddress.ip_address(route["nexthop"]).version} != {cidr.version}:
            raise _invalid("host_routes", f"{route} does not match IP version {cidr.version}")
    if len(set(subnet["dns_nameservers"])) != len(subnet["dns_nameservers"]):
        raise _invalid("dns_nameservers", "a name server is listed twice")


def _check_ipv6_modes(subnet: Json) -> None:
    modes = {subnet["ipv6_ra_mode"], subnet["ipv6_address_mode"]} - {None}
    if modes and subnet["ip_version"] == 4:
        raise _invalid("ipv6_address_mode", "IPv6 modes cannot be set on an IPv4 subnet")
    if len(modes) > 1:
        raise _invalid("ipv6_ra_mode", "ipv6_ra_mode and ipv6_address_mode must be equal")


def _check_no_overlap(site: Site, network: Json, subnet: Json) -> None:
    cidr = ipaddress.ip_network(subnet["cidr"])
    for other in _subnets(site, network):
        if cidr.overlaps(ipaddress.ip_network(other["cidr"])):
            raise _bad(
                f"Invalid input for operation: Requested subnet with cidr: {cidr} for network: "
                f"{network['id']} overlaps with another subnet.",
                "InvalidInput",
            )


def _own_network(site: Site, actor: Actor, network_id: str) -> Json:
    network = _load(site, NETWORK, actor, network_id)
    if not actor.owns(network):
        raise _forbidden("rule:create_subnet")
    return network


def _build_subnet(site: Site, actor: Actor, attrs: Json, subnet: Json) -> None:
    network = _own_network(site, actor, subnet["network_id"])
    cidr = ipaddress.ip_network(subnet["cidr"])
    if subnet["ip_version"] not in (None, cidr.version):
        raise _invalid("ip_version", f"{subnet['cidr']} is not an IPv{subnet['ip_version']} CIDR")
    subnet["ip_version"] = cidr.version
    if "gateway_ip" not in attrs:
        subnet["gateway_ip"] = _address(cidr.version, _host_range(cidr)[0])
    if subnet["allocation_pools"] is None:
        subnet["allocation_pools"] = _default_pools(subnet)
    _check_layout(subnet)
    _check_ipv6_modes(subnet)
    _check_no_overlap(site, network, subnet)
    subnet.update(subnetpool_id=None, segment_id=None, service_types=[])
    network["subnets"].append(subnet["id"])
    _save(site, NETWORK, network)


def _change_subnet(_site: Site, _actor: Actor, subnet: Json, attrs: Json) -> None:
    subnet.update(attrs)
    _check_layout(subnet)


def _strip_subnet(site: Site, port: Json, subnet_id: str) -> None:
    port["fixed_ips"] = [f for f in port["fixed_ips"] if f["subnet_id"] != subnet_id]
    site.state.release(port["id"], _ip_scope(subnet_id))
    _touch(port)
    _save(site, PORT, port)


def _remove_subnet(site: Site, _actor: Actor, subnet: Json) -> None:
    users = [
        port
        for port in _ports_where(site, network_id=subnet["network_id"])
        if any(fixed["subnet_id"] == subnet["id"] for fixed in port["fixed_ips"])
    ]
    if any(port["device_owner"] != DHCP for port in users):
        message = (
            f"Unable to complete operation on subnet {subnet['id']}: "
            "One or more ports have an IP allocation from this subnet."
        )
        raise _error(409, "SubnetInUse", message)
    for port in users:
        _strip_subnet(site, port, subnet["id"])
    network = _network_of(site, subnet)
    network["subnets"].remove(subnet["id"])
    _save(site, NETWORK, network)
    _drop(site, SUBNET, subnet)


# -- ports -----------------------------------------------------------------------------------


def _port_visible(site: Site, actor: Actor, port: Json) -> bool:
    return actor.owns(port) or actor.owns(_network_of(site, port))


def _apply_binding(port: Json) -> None:
    bound = bool(port["binding:host_id"])
    port["binding:vif_type"] = "ovs" if bound else "unbound"
    port["binding:vif_details"] = {"port_filter": True, "bridge_name": "br-int"} if bound else {}
    port["status"] = "ACTIVE" if bound and port["admin_state_up"] else "DOWN"


def _network_owner_only(actor: Actor, network: Json, attrs: Json) -> None:
    """Choosing a MAC or an IP address is for the network's owner (and admins)."""
    chooses = "mac_address" in attrs or any("ip_address" in f for f in attrs.get("fixed_ips") or [])
    if chooses and not actor.owns(network):
        raise _forbidden("rule:create_port:fixed_ips:ip_address")


def _port_groups(site: Site, port: Json, wanted: list[str] | None) -> list[str]:
    if port["device_owner"].startswith("network:"):
        return []
    if wanted is None:
        default = _default_group(site, port["_project_id"])["id"]
        return [default] if port["port_security_enabled"] else []
    if wanted and not port["port_security_enabled"]:
        message = (
            "Port security must be enabled and port must have an IP address in order to use "
            "security groups."
        )
        raise _error(409, "PortSecurityAndIPRequiredForSecurityGroups", message)
    for group_id in wanted:
        group = site.state.get("security_group", group_id)
        if group is None or group["_project_id"] != port["_project_id"]:
            raise SECURITY_GROUP.missing(group_id)
    return list(dict.fromkeys(wanted))


def _check_pairs(port: Json) -> None:
    if port["allowed_address_pairs"] and not port["port_security_enabled"]:
        message = "Port Security must be enabled in order to have allowed address pairs on a port."
        raise _error(409, "AddressPairAndPortSecurityRequired", message)
    for pair in port["allowed_address_pairs"]:
        pair.setdefault("mac_address", port["mac_address"])


def _build_port(site: Site, actor: Actor, attrs: Json, port: Json) -> None:
    network = _usable_network(site, actor, port["network_id"], port["_project_id"])
    _network_owner_only(actor, network, attrs)
    port["mac_address"] = _take_mac(site, port, network)
    port["fixed_ips"] = _take_ips(site, network, port["id"], port["fixed_ips"])
    if port["port_security_enabled"] is None:
        port["port_security_enabled"] = network["port_security_enabled"]
    port["security_groups"] = _port_groups(site, port, port["security_groups"])
    _check_pairs(port)
    _apply_binding(port)


def _change_port(site: Site, actor: Actor, port: Json, attrs: Json) -> None:
    """Checks everything first; the fixed IPs, whose allocations change, come last."""
    network = _network_of(site, port)
    _network_owner_only(actor, network, attrs)
    disables = attrs.get("port_security_enabled") is False and "security_groups" not in attrs
    if disables and port["security_groups"]:
        message = (
            "Port has security group associated. Cannot disable port security or ip address "
            "until security group is removed"
        )
        raise _error(409, "PortSecurityPortHasSecurityGroup", message)
    changed = {**port, **{k: v for k, v in attrs.items() if k != "security_groups"}}
    if "security_groups" in attrs:
        changed["security_groups"] = _port_groups(site, changed, attrs["security_groups"])
    _check_pairs(changed)
    if "fixed_ips" in attrs:
        changed["fixed_ips"] = _retake_ips(site, network, port, attrs["fixed_ips"])
    _apply_binding(changed)
    port.update(changed)


def _drop_port(site: Site, port: Json) -> None:
    """Delete a port: its floating IPs are disassociated, its addresses released."""
    for fip in site.state.list("floatingip"):
        if fip["port_id"] == port["id"]:
            _associate(site, SYSTEM, fip, None, None)
            _touch(fip)
            _save(site, FLOATINGIP, fip)
    _drop(site, PORT, port)


def _remove_port(site: Site, _actor: Actor, port: Json) -> None:
    if port["device_owner"] in SERVICE_OWNERS:
        message = (
            f"Port {port['id']} cannot be deleted directly via the port API: "
            f"has device owner {port['device_owner']}."
        )
        raise _error(409, "ServicePortInUse", message)
    _drop_port(site, port)


def _internal_port(
    site: Site,
    network: Json,
    project_id: str,
    device_owner: str,
    device_id: str,
    fixed: list[Json] | None,
) -> Json:
    """A port Neutron makes for itself (router interface or gateway, floating IP)."""
    attrs = {
        "network_id": network["id"],
        "device_owner": device_owner,
        "device_id": device_id,
        "binding:host_id": site.hosts[0].name,
        "fixed_ips": fixed,
    }
    return _create_resource(site, PORT, SYSTEM, attrs, project_id)


# -- security groups -------------------------------------------------------------------------


def _seed_rules(site: Site, group: Json, from_itself: bool) -> None:
    """Neutron's rules for a new group: all egress, and for a default group all ingress from
    its own members."""
    for ethertype in ("IPv4", "IPv6"):
        remotes = [("ingress", group["id"])] if from_itself else []
        for direction, remote in [*remotes, ("egress", None)]:
            attrs = {
                "security_group_id": group["id"],
                "direction": direction,
                "ethertype": ethertype,
                "remote_group_id": remote,
            }
            rule = _new_body(SECURITY_GROUP_RULE, attrs, group["_project_id"])
            _save(site, SECURITY_GROUP_RULE, rule)


def _default_group(site: Site, project_id: str) -> Json:
    """The project's ``default`` group, created on first use."""
    with site.state.lock:
        for group in site.state.list("security_group", project_id):
            if group.get("_default"):
                return group
        attrs = {"name": "default", "description": "Default security group", "_default": True}
        group = _new_body(SECURITY_GROUP, attrs, project_id)
        _save(site, SECURITY_GROUP, group)
        _seed_rules(site, group, from_itself=True)
        return group


def _ensure_default_group(site: Site, actor: Actor) -> None:
    if actor.project_id:
        _default_group(site, actor.project_id)


def _build_group(site: Site, _actor: Actor, _attrs: Json, group: Json) -> None:
    if group["name"] == "default":
        raise _error(
            409, "SecurityGroupDefaultAlreadyExists", "Default security group already exists."
        )
    _default_group(site, group["_project_id"])
    _seed_rules(site, group, from_itself=False)


def _change_group(_site: Site, _actor: Actor, group: Json, attrs: Json) -> None:
    if group.get("_default") and "name" in attrs:
        raise _error(
            409, "SecurityGroupCannotUpdateDefault", "Updating default security group not allowed."
        )
    group.update(attrs)


def _remove_group(site: Site, actor: Actor, group: Json) -> None:
    if any(group["id"] in port["security_groups"] for port in site.state.list("port")):
        raise _error(409, "SecurityGroupInUse", f"Security Group {group['id']} in use.")
    if group.get("_default") and not actor.admin:
        message = "Insufficient rights for removing default security group."
        raise _error(409, "SecurityGroupCannotRemoveDefault", message)
    for rule in site.state.list("security_group_rule"):
        if group["id"] in (rule["security_group_id"], rule["remote_group_id"]):
            _drop(site, SECURITY_GROUP_RULE, rule)
    _drop(site, SECURITY_GROUP, group)


def _expand_groups(site: Site, views: list[Json]) -> None:
    rules: dict[str, list[Json]] = {}
    for rule in site.state.list("security_group_rule"):
        rules.setdefault(rule["security_group_id"], []).append(public(rule))
    for view in views:
        view["security_group_rules"] = rules.get(view["id"], [])


def _protocol_number(protocol: str) -> int:
    return PROTOCOLS[protocol] if protocol in PROTOCOLS else int(protocol)


def _check_port_range(low: int | None, high: int | None) -> None:
    if 0 in (low, high):
        raise _bad("Invalid value for port 0.", "SecurityGroupInvalidPortValue")
    if low is None or high is None or low > high:
        message = "For TCP/UDP protocols, port_range_min must be <= port_range_max"
        raise _bad(message, "SecurityGroupInvalidPortRange")


def _check_icmp(low: int | None, high: int | None) -> None:
    if any(value is not None and value > 255 for value in (low, high)):
        message = f"Invalid value for ICMP type or code: {low}, {high}. It must be 0 to 255."
        raise _bad(message, "SecurityGroupInvalidIcmpValue")
    if low is None:
        message = (
            f"ICMP code (port-range-max) {high} is provided but ICMP type (port-range-min) "
            "is missing."
        )
        raise _bad(message, "SecurityGroupMissingIcmpType")


def _check_ports(rule: Json) -> None:
    """Neutron's rules for port ranges: TCP-like ports 1..65535, ICMP type and code."""
    low, high, protocol = rule["port_range_min"], rule["port_range_max"], rule["protocol"]
    if low is None and high is None:
        return
    if protocol is None:
        message = "Must also specify protocol if port range is given."
        raise _bad(message, "SecurityGroupProtocolRequiredWithPorts")
    number = _protocol_number(protocol)
    if number in PORT_PROTOCOLS:
        _check_port_range(low, high)
    elif number in ICMP_PROTOCOLS:
        _check_icmp(low, high)
    else:
        message = (
            f"Invalid protocol {protocol} for port range, only supported for TCP, UDP, UDPLITE, "
            "SCTP, DCCP and ICMP protocols."
        )
        raise _bad(message, "SecurityGroupInvalidProtocolForPort")


def _check_remote(site: Site, actor: Actor, rule: Json) -> None:
    prefix, ethertype = rule["remote_ip_prefix"], rule["ethertype"]
    if prefix and rule["remote_group_id"]:
        message = "Only remote_ip_prefix or remote_group_id may be provided."
        raise _bad(message, "SecurityGroupRemoteGroupAndRemoteIpPrefix")
    if prefix and f"IPv{ipaddress.ip_network(prefix).version}" != ethertype:
        message = f"Conflicting value ethertype {ethertype} for CIDR {prefix}"
        raise _bad(message, "SecurityGroupRuleParameterConflict")
    protocol = rule["protocol"]
    if ethertype == "IPv4" and protocol and _protocol_number(protocol) in IPV6_ONLY_PROTOCOLS:
        message = f"Ethertype {ethertype} is not supported for protocol {protocol}."
        raise _bad(message, "SecurityGroupEthertypeConflictWithProtocol")
    if rule["remote_group_id"]:
        _load(site, SECURITY_GROUP, actor, rule["remote_group_id"])


def _rule_key(rule: Json) -> tuple[Any, ...]:
    protocol = None if rule["protocol"] is None else _protocol_number(rule["protocol"])
    prefix = None if rule["remote_ip_prefix"] in ("0.0.0.0/0", "::/0") else rule["remote_ip_prefix"]
    fields = ("direction", "ethertype", "port_range_min", "port_range_max", "remote_group_id")
    return (*(rule[name] for name in fields), protocol, prefix)


def _build_rule(site: Site, actor: Actor, _attrs: Json, rule: Json) -> None:
    group = _writable(site, SECURITY_GROUP, actor, rule["security_group_id"])
    owner = group["_project_id"]
    rule.update(project_id=owner, tenant_id=owner, _project_id=owner)
    if rule["ethertype"] == "IPv6" and rule["protocol"] in ("icmp", "1"):
        rule["protocol"] = "ipv6-icmp" if rule["protocol"] == "icmp" else "58"
    _check_ports(rule)
    _check_remote(site, actor, rule)
    for other in site.state.list("security_group_rule"):
        if other["security_group_id"] == group["id"] and _rule_key(other) == _rule_key(rule):
            message = f"Security group rule already exists. Rule id is {other['id']}."
            raise _error(409, "SecurityGroupRuleExists", message)


def _remove_rule(site: Site, _actor: Actor, rule: Json) -> None:
    _drop(site, SECURITY_GROUP_RULE, rule)


# -- routers ---------------------------------------------------------------------------------


def _interfaces(site: Site, router_id: str) -> list[Json]:
    return _ports_where(site, device_id=router_id, device_owner=ROUTER_INTERFACE)


def _router_subnets(site: Site, router_id: str) -> list[Json]:
    ports = _interfaces(site, router_id) + _gateway_ports(site, router_id)
    return [subnet for port in ports for subnet in _port_subnets(site, port)]


def _gateway_ports(site: Site, router_id: str) -> list[Json]:
    return _ports_where(site, device_id=router_id, device_owner=ROUTER_GATEWAY)


def _gateway_in_use(site: Site, router: Json) -> None:
    if any(fip["router_id"] == router["id"] for fip in site.state.list("floatingip")):
        message = (
            f"Gateway cannot be updated for router {router['id']}, since a gateway to external "
            "network is required by one or more floating IPs."
        )
        raise _error(409, "RouterExternalGatewayInUseByFloatingIp", message)


def _set_gateway(site: Site, actor: Actor, router: Json, info: Json | None) -> None:
    current = router["external_gateway_info"]
    if info and not actor.admin and {"enable_snat", "external_fixed_ips"} & set(info):
        raise _forbidden("rule:update_router:external_gateway_info:external_fixed_ips")
    keeps_port = info and "external_fixed_ips" not in info
    if current and info and keeps_port and info["network_id"] == current["network_id"]:
        current["enable_snat"] = info.get("enable_snat", current["enable_snat"])
        return
    if current:
        _gateway_in_use(site, router)
    previous = _gateway_ports(site, router["id"])
    router["external_gateway_info"] = _new_gateway(site, actor, router, info) if info else None
    for port in previous:
        _drop_port(site, port)


def _new_gateway(site: Site, actor: Actor, router: Json, info: Json) -> Json:
    network = _load(site, NETWORK, actor, info["network_id"])
    if not network["router:external"]:
        message = f"Bad router request: Network {network['id']} is not a valid external network."
        raise _bad(message, "BadRequest")
    fixed = info.get("external_fixed_ips")
    port = _internal_port(site, network, "", ROUTER_GATEWAY, router["id"], fixed)
    return {
        "network_id": network["id"],
        "enable_snat": info.get("enable_snat", True),
        "external_fixed_ips": port["fixed_ips"],
    }


def _check_routes(site: Site, router: Json, routes: list[Json]) -> list[Json]:
    connected = [ipaddress.ip_network(s["cidr"]) for s in _router_subnets(site, router["id"])]
    for route in routes:
        if not any(ipaddress.ip_address(route["nexthop"]) in cidr for cidr in connected):
            message = (
                f"Invalid format for routes: {route}, the nexthop is not connected with router"
            )
            raise _bad(message, "InvalidRoutes")
    return [dict(pair) for pair in dict.fromkeys(tuple(sorted(r.items())) for r in routes)]


def _build_router(site: Site, actor: Actor, _attrs: Json, router: Json) -> None:
    router["status"] = "ACTIVE"
    info, router["external_gateway_info"] = router["external_gateway_info"], None
    _set_gateway(site, actor, router, info)


def _change_router(site: Site, actor: Actor, router: Json, attrs: Json) -> None:
    if "routes" in attrs:
        router["routes"] = _check_routes(site, router, attrs["routes"])
    if "external_gateway_info" in attrs:
        _set_gateway(site, actor, router, attrs["external_gateway_info"])
    router.update({k: v for k, v in attrs.items() if k not in ("external_gateway_info", "routes")})


def _remove_router(site: Site, _actor: Actor, router: Json) -> None:
    if _interfaces(site, router["id"]):
        raise _error(409, "RouterInUse", f"Router {router['id']} still has ports")
    for port in _gateway_ports(site, router["id"]):
        _drop_port(site, port)
    _drop(site, ROUTER, router)


def _interface_request(raw: Any, adding: bool) -> Json:
    keys = {"subnet_id", "port_id"}
    if not isinstance(raw, dict) or not raw or set(raw) - keys:
        raise _bad("Either subnet_id or port_id must be specified")
    if adding and set(raw) == keys:
        raise _bad("Cannot specify both subnet-id and port-id")
    return {key: _uuid(key, value) for key, value in raw.items()}


def _check_router_subnets(site: Site, router: Json, subnets: list[Json]) -> None:
    attached = [s for p in _interfaces(site, router["id"]) for s in _port_subnets(site, p)]
    for subnet in subnets:
        for other in attached:
            if other["id"] == subnet["id"]:
                raise _bad(f"Router already has a port on subnet {subnet['id']}.", "BadRequest")
            if ipaddress.ip_network(subnet["cidr"]).overlaps(ipaddress.ip_network(other["cidr"])):
                message = (
                    f"Bad router request: Cidr {subnet['cidr']} of subnet {subnet['id']} "
                    f"overlaps with cidr {other['cidr']} of subnet {other['id']}."
                )
                raise _bad(message, "BadRequest")


def _port_subnets(site: Site, port: Json) -> list[Json]:
    return _subnet_bodies(site, _subnet_ids(port))


def _interface_on_subnet(site: Site, actor: Actor, router: Json, subnet_id: str) -> Json:
    subnet = _load(site, SUBNET, actor, subnet_id)
    if not subnet["gateway_ip"]:
        message = "Bad router request: Subnet for router interface must have a gateway IP."
        raise _bad(message, "BadRequest")
    _check_router_subnets(site, router, [subnet])
    fixed = [{"subnet_id": subnet["id"], "ip_address": subnet["gateway_ip"]}]
    network = _network_of(site, subnet)
    return _internal_port(
        site, network, router["_project_id"], ROUTER_INTERFACE, router["id"], fixed
    )


def _interface_on_port(site: Site, actor: Actor, router: Json, port_id: str) -> Json:
    port = _writable(site, PORT, actor, port_id)
    if port["device_id"] or port["device_owner"]:
        message = (
            f"Unable to complete operation on port {port_id} for network {port['network_id']}. "
            f"Port already has an attached device {port['device_id']}."
        )
        raise _error(409, "PortInUse", message)
    if not port["fixed_ips"]:
        raise _bad("Bad router request: Router port must have at least one fixed IP.", "BadRequest")
    _check_router_subnets(site, router, _port_subnets(site, port))
    port.update(device_id=router["id"], device_owner=ROUTER_INTERFACE, security_groups=[])
    port["binding:host_id"] = site.hosts[0].name
    _apply_binding(port)
    _touch(port)
    _save(site, PORT, port)
    return port


def _subnet_ids(port: Json) -> list[str]:
    return [fixed["subnet_id"] for fixed in port["fixed_ips"]]


def _find_interface(site: Site, router: Json, wanted: Json) -> Json:
    ports = _interfaces(site, router["id"])
    if "port_id" not in wanted:
        for port in ports:
            if wanted["subnet_id"] in _subnet_ids(port):
                return port
        message = f"Router {router['id']} has no interface on subnet {wanted['subnet_id']}"
        raise _error(404, "RouterInterfaceNotFoundForSubnet", message)
    for port in ports:
        if port["id"] == wanted["port_id"]:
            if wanted.get("subnet_id", _subnet_ids(port)[0]) not in _subnet_ids(port):
                message = f"Subnet {wanted['subnet_id']} does not match with the port {port['id']}"
                raise _bad(message, "SubnetMismatchForPort")
            return port
    message = f"Router {router['id']} does not have an interface with id {wanted['port_id']}"
    raise _error(404, "RouterInterfaceNotFound", message)


def _check_interface_unused(site: Site, router: Json, port: Json) -> None:
    for subnet in _port_subnets(site, port):
        cidr = ipaddress.ip_network(subnet["cidr"])
        fips = [f for f in site.state.list("floatingip") if f["router_id"] == router["id"]]
        if any(ipaddress.ip_address(f["fixed_ip_address"]) in cidr for f in fips):
            message = (
                f"Router interface for subnet {subnet['id']} on router {router['id']} cannot be "
                "deleted, as it is required by one or more floating IPs."
            )
            raise _error(409, "RouterInterfaceInUseByFloatingIP", message)
        if any(ipaddress.ip_address(r["nexthop"]) in cidr for r in router["routes"]):
            message = (
                f"Router interface for subnet {subnet['id']} on router {router['id']} cannot be "
                "deleted, as it is required by one or more routes."
            )
            raise _error(409, "RouterInterfaceInUseByRoute", message)


def _interface_view(router: Json, port: Json) -> Json:
    subnet_ids = _subnet_ids(port)
    return {
        "id": router["id"],
        "network_id": port["network_id"],
        "port_id": port["id"],
        "subnet_id": subnet_ids[0] if subnet_ids else None,
        "subnet_ids": subnet_ids,
        "project_id": router["project_id"],
        "tenant_id": router["project_id"],
        "tags": router["tags"],
    }


def _add_interface(site: Site, actor: Actor, router_id: str, raw: Any) -> Json:
    wanted = _interface_request(raw, adding=True)
    with site.state.lock:
        router = _writable(site, ROUTER, actor, router_id)
        if "port_id" in wanted:
            port = _interface_on_port(site, actor, router, wanted["port_id"])
        else:
            port = _interface_on_subnet(site, actor, router, wanted["subnet_id"])
        _touch(router)
        _save(site, ROUTER, router)
    return _interface_view(router, port)


def _remove_interface(site: Site, actor: Actor, router_id: str, raw: Any) -> Json:
    wanted = _interface_request(raw, adding=False)
    with site.state.lock:
        router = _writable(site, ROUTER, actor, router_id)
        port = _find_interface(site, router, wanted)
        _check_interface_unused(site, router, port)
        _drop_port(site, port)
        _touch(router)
        _save(site, ROUTER, router)
    return _interface_view(router, port)


# -- floating IPs ----------------------------------------------------------------------------


def _fixed_address(port: Json, wanted: str | None) -> Json:
    for fixed in port["fixed_ips"]:
        version = ipaddress.ip_address(fixed["ip_address"]).version
        if fixed["ip_address"] == wanted or (wanted is None and version == 4):
            return dict(fixed)
    if wanted is not None:
        raise _bad(f"Port {port['id']} does not have fixed ip {wanted}", "BadRequest")
    message = f"Bad floatingip request: Port {port['id']} does not have any IPv4 address."
    raise _bad(message, "BadRequest")


def _router_towards(site: Site, fip: Json, subnet_id: str, port_id: str) -> str:
    for router in site.state.list("router"):
        gateway = router["external_gateway_info"]
        towards = gateway is not None and gateway["network_id"] == fip["floating_network_id"]
        if towards and any(subnet_id in _subnet_ids(p) for p in _interfaces(site, router["id"])):
            return str(router["id"])
    message = (
        f"External network {fip['floating_network_id']} is not reachable from subnet "
        f"{subnet_id}.  Therefore, cannot associate Port {port_id} with a Floating IP."
    )
    raise _error(404, "ExternalGatewayForFloatingIPNotFound", message)


def _check_fixed_free(site: Site, fip: Json, port_id: str, address: str) -> None:
    for other in site.state.list("floatingip"):
        if other["id"] != fip["id"] and (other["port_id"], other["fixed_ip_address"]) == (
            port_id,
            address,
        ):
            message = (
                f"Cannot associate floating IP {fip['floating_ip_address']} ({fip['id']}) with "
                f"port {port_id} using fixed IP {address}, as that fixed IP already has a "
                f"floating IP on external network {other['floating_network_id']}."
            )
            raise _error(409, "FloatingIPPortAlreadyAssociated", message)


def _associate(
    site: Site, actor: Actor, fip: Json, port_id: str | None, address: str | None
) -> None:
    """Point the floating IP at a port's fixed IP through a router (or at nothing)."""
    if port_id is None:
        if address is not None:
            raise _bad("fixed_ip_address cannot be specified without a port_id", "BadRequest")
        fip.update(port_id=None, fixed_ip_address=None, router_id=None, status="DOWN")
        return
    port = _load(site, PORT, actor, port_id)
    if port["_project_id"] != fip["_project_id"]:
        message = (
            f"Cannot create floating IP and bind it to Port {port_id}, since that port is owned "
            "by a different tenant."
        )
        raise _bad(message, "BadRequest")
    fixed = _fixed_address(port, address)
    _check_fixed_free(site, fip, port_id, fixed["ip_address"])
    router_id = _router_towards(site, fip, fixed["subnet_id"], port_id)
    fip.update(port_id=port_id, fixed_ip_address=fixed["ip_address"], router_id=router_id)
    fip["status"] = "ACTIVE"


def _floating_request(site: Site, network: Json, fip: Json) -> list[Json]:
    wanted = {"subnet_id": fip["subnet_id"], "ip_address": fip["floating_ip_address"]}
    wanted = {key: value for key, value in wanted.items() if value is not None}
    if wanted:
        return [wanted]
    for subnet in _subnets(site, network):
        if subnet["ip_version"] == 4:
            return [{"subnet_id": subnet["id"]}]
    message = f"Bad floatingip request: Network {network['id']} has no IPv4 subnet."
    raise _bad(message, "BadRequest")


def _build_fip(site: Site, actor: Actor, _attrs: Json, fip: Json) -> None:
    network = _load(site, NETWORK, actor, fip["floating_network_id"])
    if not network["router:external"]:
        message = (
            f"Bad floatingip request: Network {network['id']} is not a valid external network."
        )
        raise _bad(message, "BadRequest")
    _associate(site, actor, fip, fip["port_id"], fip["fixed_ip_address"])
    port = _internal_port(
        site, network, "", FLOATING_IP, fip["id"], _floating_request(site, network, fip)
    )
    fixed = port["fixed_ips"][0]
    fip.update(subnet_id=fixed["subnet_id"], floating_ip_address=fixed["ip_address"])


def _change_fip(site: Site, actor: Actor, fip: Json, attrs: Json) -> None:
    if "port_id" in attrs or "fixed_ip_address" in attrs:
        port_id = attrs.get("port_id", fip["port_id"])
        _associate(site, actor, fip, port_id, attrs.get("fixed_ip_address"))
    fip["description"] = attrs.get("description", fip["description"])


def _remove_fip(site: Site, _actor: Actor, fip: Json) -> None:
    for port in _ports_where(site, device_id=fip["id"], device_owner=FLOATING_IP):
        _drop(site, PORT, port)
    _drop(site, FLOATINGIP, fip)


# -- the kinds -------------------------------------------------------------------------------

NETWORK = Kind(
    "network",
    "networks",
    "Network",
    "Network",
    {
        **NAMED,
        "admin_state_up": Attr(_boolean, True),
        "shared": Attr(_boolean, False, admin_write=True),
        "router:external": Attr(_boolean, False, admin_write=True),
        "provider:network_type": Attr(
            _choice(*SEGMENTS), None, put=False, admin_write=True, admin_read=True
        ),
        "provider:physical_network": Attr(
            _nullable(_text(32)), None, put=False, admin_write=True, admin_read=True
        ),
        "provider:segmentation_id": Attr(
            _nullable(_integer(1, 16777215)), None, put=False, admin_write=True, admin_read=True
        ),
        "mtu": Attr(_integer(68, 9000), None),
        "port_security_enabled": Attr(_boolean, True),
        "availability_zone_hints": Attr(_list_of(_text()), [], put=False),
        "availability_zones": Attr(),
        "status": Attr(),
        "subnets": Attr(),
    },
    build=_build_network,
    change=_change_network,
    remove=_remove_network,
    visible=_network_visible,
)

SUBNET = Kind(
    "subnet",
    "subnets",
    "Subnet",
    "Subnet",
    {
        **NAMED,
        "network_id": Attr(_uuid, put=False, required=True),
        "cidr": Attr(_cidr, put=False, required=True),
        "ip_version": Attr(_choice(4, 6), None, put=False),
        "gateway_ip": Attr(_nullable(_ip), None),
        "allocation_pools": Attr(_list_of(_record({"start": _ip, "end": _ip})), None),
        "enable_dhcp": Attr(_boolean, True),
        "dns_nameservers": Attr(_list_of(_ip), []),
        "host_routes": Attr(_list_of(ROUTE), []),
        "ipv6_ra_mode": Attr(IPV6_MODE, None, put=False),
        "ipv6_address_mode": Attr(IPV6_MODE, None, put=False),
        "subnetpool_id": Attr(),
        "segment_id": Attr(),
        "service_types": Attr(),
    },
    build=_build_subnet,
    change=_change_subnet,
    remove=_remove_subnet,
    visible=_subnet_visible,
)

PORT = Kind(
    "port",
    "ports",
    "Port",
    "Port",
    {
        **NAMED,
        "network_id": Attr(_uuid, put=False, required=True),
        "admin_state_up": Attr(_boolean, True),
        "mac_address": Attr(_mac, None, put=False),
        "fixed_ips": Attr(_list_of(FIXED_IP), None),
        "device_id": Attr(_text(), ""),
        "device_owner": Attr(_text(), ""),
        "binding:host_id": Attr(_text(), "", admin_write=True, admin_read=True),
        "binding:profile": Attr(_dict, {}, admin_write=True, admin_read=True),
        "binding:vnic_type": Attr(_choice("normal", "direct", "macvtap", "baremetal"), "normal"),
        "binding:vif_type": Attr(admin_read=True),
        "binding:vif_details": Attr(admin_read=True),
        "allowed_address_pairs": Attr(
            _list_of(_record({"ip_address": _prefix}, {"mac_address": _mac})), []
        ),
        "security_groups": Attr(_nullable(_list_of(_uuid)), None),
        "port_security_enabled": Attr(_boolean, None),
        "status": Attr(),
    },
    build=_build_port,
    change=_change_port,
    remove=_remove_port,
    visible=_port_visible,
)

SECURITY_GROUP = Kind(
    "security_group",
    "security_groups",
    "Security group",
    "SecurityGroup",
    {**NAMED, "stateful": Attr(_boolean, True, put=False)},
    build=_build_group,
    change=_change_group,
    remove=_remove_group,
    expand=_expand_groups,
    prepare=_ensure_default_group,
)

SECURITY_GROUP_RULE = Kind(
    "security_group_rule",
    "security_group_rules",
    "Security group rule",
    "SecurityGroupRule",
    {
        **STANDARD,
        "security_group_id": Attr(_uuid, put=False, required=True),
        "direction": Attr(_choice("ingress", "egress"), put=False, required=True),
        "ethertype": Attr(_choice("IPv4", "IPv6"), "IPv4", put=False),
        "protocol": Attr(_protocol, None, put=False),
        "port_range_min": Attr(PORT_NUMBER, None, put=False),
        "port_range_max": Attr(PORT_NUMBER, None, put=False),
        "remote_ip_prefix": Attr(_nullable(_prefix), None, put=False),
        "remote_group_id": Attr(_nullable(_uuid), None, put=False),
    },
    build=_build_rule,
    remove=_remove_rule,
    prepare=_ensure_default_group,
)

ROUTER = Kind(
    "router",
    "routers",
    "Router",
    "Router",
    {
        **NAMED,
        "admin_state_up": Attr(_boolean, True),
        "external_gateway_info": Attr(
            _nullable(
                _record(
                    {"network_id": _uuid},
                    {"enable_snat": _boolean, "external_fixed_ips": _list_of(FIXED_IP)},
                )
            ),
            None,
        ),
        "routes": Attr(_list_of(ROUTE), [], post=False),
        "status": Attr(),
    },
    build=_build_router,
    change=_change_router,
    remove=_remove_router,
)

FLOATINGIP = Kind(
    "floatingip",
    "floatingips",
    "Floating IP",
    "FloatingIP",
    {
        **STANDARD,
        "floating_network_id": Attr(_uuid, put=False, required=True),
        "subnet_id": Attr(_uuid, None, put=False),
        "floating_ip_address": Attr(_ip, None, put=False, admin_write=True),
        "port_id": Attr(_nullable(_uuid), None),
        "fixed_ip_address": Attr(_nullable(_ip), None),
        "router_id": Attr(),
        "status": Attr(),
    },
    build=_build_fip,
    change=_change_fip,
    remove=_remove_fip,
)

KINDS = (NETWORK, SUBNET, PORT, SECURITY_GROUP, SECURITY_GROUP_RULE, ROUTER, FLOATINGIP)


# -- what the compute service calls ----------------------------------------------------------


def create_port(
    site: Site,
    project_id: str,
    network_id: str,
    *,
    device_id: str,
    device_owner: str,
    host: str,
    name: str = "",
) -> dict[str, Any]:
    """A port Nova makes for a server on a network the project may use (404 otherwise)."""
    attrs = {
        "network_id": network_id,
        "name": name,
        "device_id": device_id,
        "device_owner": device_owner,
        "binding:host_id": host,
        "_created_by": "nova",
    }
    return public(_create_resource(site, PORT, Actor(project_id), attrs, project_id))


def bind_port(
    site: Site,
    port_id: str,
    *,
    project_id: str | None,
    device_id: str,
    device_owner: str,
    host: str,
) -> dict[str, Any]:
    """Plug a port the user created (of ``project_id``, any when None) into a server."""
    with site.state.lock:
        port = site.state.get("port", port_id)
        if port is None or project_id not in (None, port["_project_id"]):
            raise PORT.missing(port_id)
        if port["device_id"] not in ("", device_id):
            message = (
                f"Unable to complete operation on port {port_id} for network "
                f"{port['network_id']}. Port already has an attached device {port['device_id']}."
            )
            raise _error(409, "PortInUse", message)
        port.update({"device_id": device_id, "device_owner": device_owner, "binding:host_id": host})
        _apply_binding(port)
        _touch(port)
        _save(site, PORT, port)
    return public(port)


def unbind_ports(site: Site, device_id: str) -> None:
    """A server is gone: delete the ports Nova made for it, unplug the others."""
    with site.state.lock:
        for port in _ports_where(site, device_id=device_id):
            if port.get("_created_by") == "nova":
                _drop_port(site, port)
                continue
            port.update({"device_id": "", "device_owner": "", "binding:host_id": ""})
            port["binding:profile"] = {}
            _apply_binding(port)
            _touch(port)
            _save(site, PORT, port)


def ports_of(site: Site, device_id: str) -> list[dict[str, Any]]:
    return [public(port) for port in _ports_where(site, device_id=device_id)]


def network_name(site: Site, network_id: str) -> str:
    network = site.state.get("network", network_id)
    if network is None:
        raise NETWORK.missing(network_id)
    return str(network["name"])


# -- HTTP ------------------------------------------------------------------------------------

EXTENSIONS = {
    "allowed-address-pairs": "Allowed Address Pairs",
    "binding": "Port Binding",
    "external-net": "Neutron external network",
    "extraroute": "Neutron Extra Route",
    "filter-validation": "Filter parameters validation",
    "net-mtu": "Network MTU",
    "net-mtu-writable": "Network MTU (writable)",
    "pagination": "Pagination support",
    "port-security": "Port Security",
    "project-id": "project_id field enabled",
    "provider": "Provider Network",
    "router": "Neutron L3 Router",
    "security-group": "security-group",
    "sorting": "Sorting support",
    "standard-attr-description": "standard-attr-description",
    "standard-attr-revisions": "Resource revision numbers",
    "standard-attr-tag": "Tag support for resources with standard attribute",
    "standard-attr-timestamp": "Resource timestamps",
}


def _extension(alias: str) -> Json:
    name = EXTENSIONS[alias]
    updated = "2013-01-01T10:00:00-00:00"
    return {"alias": alias, "name": name, "description": name, "updated": updated, "links": []}


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _discovery_router() -> APIRouter:
    router = APIRouter(tags=["network"])

    @router.get("/network", include_in_schema=False)
    @router.get("/network/", summary="Neutron API versions")
    def list_versions(request: Request) -> Json:
        link = {"rel": "self", "href": f"{_base(request)}{PREFIX}/"}
        return {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [link]}]}

    @router.get(PREFIX, include_in_schema=False)
    @router.get(f"{PREFIX}/", summary="Neutron v2.0 resources")
    def list_resources(request: Request, _caller: Caller) -> Json:
        return {
            "resources": [
                {
                    "name": kind.name,
                    "collection": kind.plural,
                    "links": [{"rel": "self", "href": f"{_base(request)}{kind.path}"}],
                }
                for kind in KINDS
            ]
        }

    @router.get(f"{PREFIX}/extensions", summary="Neutron extensions")
    def list_extensions(_caller: Caller) -> Json:
        return {"extensions": [_extension(alias) for alias in EXTENSIONS]}

    @router.get(f"{PREFIX}/extensions/{{alias}}", summary="One Neutron extension")
    def show_extension(alias: str, _caller: Caller) -> Json:
        if alias not in EXTENSIONS:
            raise _error(404, "ExtensionNotFound", f"Extension with alias {alias} does not exist")
        return {"extension": _extension(alias)}

    return router


def _crud_router(kind: Kind) -> APIRouter:
    router = APIRouter(prefix=kind.path, tags=["network"])

    @router.get("", summary=f"List {kind.plural}")
    def list_all(request: Request, caller: Caller, site: SiteDep) -> Json:
        return _list(site, kind, _actor(caller), request)

    @router.post("", status_code=201, summary=f"Create a {kind.name}")
    def create(body: JsonBody, caller: Caller, site: SiteDep) -> Json:
        actor = _actor(caller)
        return {kind.name: _render(site, kind, actor, [_create(site, kind, actor, body)])[0]}

    @router.get("/{resource_id}", summary=f"Show a {kind.name}")
    def show(resource_id: str, request: Request, caller: Caller, site: SiteDep) -> Json:
        actor = _actor(caller)
        view = _render(site, kind, actor, [_load(site, kind, actor, resource_id)])[0]
        return {kind.name: _select(view, _fields(_grouped(request)))}

    @router.put("/{resource_id}", summary=f"Update a {kind.name}")
    def update(resource_id: str, body: JsonBody, caller: Caller, site: SiteDep) -> Json:
        actor = _actor(caller)
        changed = _update(site, kind, actor, resource_id, body)
        return {kind.name: _render(site, kind, actor, [changed])[0]}

    @router.delete("/{resource_id}", status_code=204, summary=f"Delete a {kind.name}")
    def delete(resource_id: str, caller: Caller, site: SiteDep) -> Response:
        _delete(site, kind, _actor(caller), resource_id)
        return Response(status_code=204)

    return router


def _tag(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 255:
        raise _invalid("tags", f"'{value}' is not a string of 1 to 255 characters")
    return value


def _retag(
    site: Site,
    kind: Kind,
    caller: AuthContext,
    resource_id: str,
    edit: Callable[[list[str]], list[str]],
) -> list[str]:
    with site.state.lock:
        body = _writable(site, kind, _actor(caller), resource_id)
        body["tags"] = edit(body["tags"])
        _touch(body)
        _save(site, kind, body)
    return list(body["tags"])


def _without(tag: str) -> Callable[[list[str]], list[str]]:
    def edit(tags: list[str]) -> list[str]:
        if tag not in tags:
            raise _error(404, "TagNotFound", f"Tag {tag} could not be found.")
        return [existing for existing in tags if existing != tag]

    return edit


def _kind_at(collection: str) -> Kind:
    for kind in KINDS:
        if kind.path == f"{PREFIX}/{collection}":
            return kind
    raise _error(404, "NotFound", f"The resource could not be found: {collection}.")


def _tag_router() -> APIRouter:
    """Neutron's tag API, the same for every collection."""
    router = APIRouter(prefix=f"{PREFIX}/{{collection}}/{{resource_id}}/tags", tags=["network"])

    @router.get("", summary="List a resource's tags")
    def list_tags(collection: str, resource_id: str, caller: Caller, site: SiteDep) -> Json:
        return {"tags": _load(site, _kind_at(collection), _actor(caller), resource_id)["tags"]}

    @router.put("", summary="Replace a resource's tags")
    def replace_tags(
        collection: str, resource_id: str, body: JsonBody, caller: Caller, site: SiteDep
    ) -> Json:
        if not isinstance(body, dict) or not isinstance(body.get("tags"), list):
            raise _bad("Unable to find 'tags' in request body")
        tags = list(dict.fromkeys(_tag(tag) for tag in body["tags"]))
        kind = _kind_at(collection)
        return {"tags": _retag(site, kind, caller, resource_id, lambda _old: tags)}

    @router.delete("", status_code=204, summary="Remove a resource's tags")
    def remove_tags(collection: str, resource_id: str, caller: Caller, site: SiteDep) -> Response:
        _retag(site, _kind_at(collection), caller, resource_id, lambda _old: [])
        return Response(status_code=204)

    @router.get("/{tag}", status_code=204, summary="Check a tag")
    def check_tag(
        collection: str, resource_id: str, tag: str, caller: Caller, site: SiteDep
    ) -> Response:
        if tag not in _load(site, _kind_at(collection), _actor(caller), resource_id)["tags"]:
            raise _error(404, "TagNotFound", f"Tag {tag} could not be found.")
        return Response(status_code=204)

    @router.put("/{tag}", status_code=201, summary="Add a tag")
    def add_tag(
        collection: str, resource_id: str, tag: str, caller: Caller, site: SiteDep
    ) -> Response:
        checked = _tag(tag)
        kind = _kind_at(collection)
        _retag(site, kind, caller, resource_id, lambda old: list(dict.fromkeys([*old, checked])))
        return Response(status_code=201)

    @router.delete("/{tag}", status_code=204, summary="Remove a tag")
    def remove_tag(
        collection: str, resource_id: str, tag: str, caller: Caller, site: SiteDep
    ) -> Response:
        _retag(site, _kind_at(collection), caller, resource_id, _without(tag))
        return Response(status_code=204)

    return router


def _interface_router() -> APIRouter:
    router = APIRouter(prefix=f"{PREFIX}/routers", tags=["network"])

    @router.put("/{router_id}/add_router_interface", summary="Attach a subnet or port")
    def add_router_interface(router_id: str, body: JsonBody, caller: Caller, site: SiteDep) -> Json:
        return _add_interface(site, _actor(caller), router_id, body)

    @router.put("/{router_id}/remove_router_interface", summary="Detach a subnet or port")
    def remove_router_interface(
        router_id: str, body: JsonBody, caller: Caller, site: SiteDep
    ) -> Json:
        return _remove_interface(site, _actor(caller), router_id, body)

    return router


def routers() -> list[APIRouter]:
    crud = (_crud_router(kind) for kind in KINDS)
    return [_discovery_router(), _interface_router(), _tag_router(), *crud]
