"""Attribute checks: each takes an attribute's name and a given value, and returns the value
normalised or raises Neutron's ``Invalid input for <attr>`` error."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any
from uuid import UUID

from cascade_sim.network.errors import invalid

Json = dict[str, Any]
Check = Callable[[str, Any], Any]

MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def text(limit: int = 255) -> Check:
    def check(attr: str, value: Any) -> str:
        if not isinstance(value, str) or len(value) > limit:
            raise invalid(attr, f"'{value}' is not a string of at most {limit} characters")
        return value

    return check


def boolean(attr: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise invalid(attr, f"'{value}' cannot be converted to boolean")


def integer(low: int, high: int) -> Check:
    def check(attr: str, value: Any) -> int:
        try:
            number = int(value) if isinstance(value, int | str) else None
        except ValueError:
            number = None
        if isinstance(value, bool) or number is None or not low <= number <= high:
            raise invalid(attr, f"'{value}' is not an integer from {low} to {high}")
        return number

    return check


def choice(*values: Any) -> Check:
    def check(attr: str, value: Any) -> Any:
        if isinstance(value, bool) or value not in values:
            raise invalid(attr, f"'{value}' is not one of {list(values)}")
        return value

    return check


def nullable(inner: Check) -> Check:
    def check(attr: str, value: Any) -> Any:
        return None if value is None else inner(attr, value)

    return check


def uuid(attr: str, value: Any) -> str:
    try:
        return str(UUID(value))
    except (TypeError, ValueError, AttributeError):
        raise invalid(attr, f"'{value}' is not a valid UUID") from None


def ip(attr: str, value: Any) -> str:
    try:
        return str(ipaddress.ip_address(value if isinstance(value, str) else ""))
    except ValueError:
        raise invalid(attr, f"'{value}' is not a valid IP address") from None


def prefix(attr: str, value: Any) -> str:
    try:
        return str(ipaddress.ip_network(value if isinstance(value, str) else "", strict=False))
    except ValueError:
        raise invalid(attr, f"'{value}' is not a valid IP prefix") from None


def cidr(attr: str, value: Any) -> str:
    normalised = prefix(attr, value)
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        reason = f"'{value}' isn't a recommended CIDR, it should be {normalised}"
        raise invalid(attr, reason) from None
    return normalised


def mac(attr: str, value: Any) -> str:
    lowered = value.lower() if isinstance(value, str) else ""
    if not MAC.fullmatch(lowered) or int(lowered[:2], 16) & 1 or lowered == "00:00:00:00:00:00":
        raise invalid(attr, f"'{value}' is not a valid unicast MAC address")
    return lowered


def dictionary(attr: str, value: Any) -> Json:
    if not isinstance(value, dict):
        raise invalid(attr, f"'{value}' is not a dictionary")
    return value


def list_of(item: Check) -> Check:
    def check(attr: str, value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise invalid(attr, f"'{value}' is not a list")
        return [item(attr, element) for element in value]

    return check


def record(required: dict[str, Check], optional: dict[str, Check] | None = None) -> Check:
    """A dictionary with the ``required`` keys and perhaps some ``optional`` ones."""
    allowed = {**required, **(optional or {})}

    def check(attr: str, value: Any) -> Json:
        given = set(dictionary(attr, value))
        if given - set(allowed) or set(required) - given:
            raise invalid(
                attr, f"'{value}' needs keys {sorted(required)} and may have {sorted(allowed)}"
            )
        return {key: allowed[key](attr, element) for key, element in value.items()}

    return check


FIXED_IP = record({}, {"subnet_id": uuid, "ip_address": ip})
ROUTE = record({"destination": prefix, "nexthop": ip})
