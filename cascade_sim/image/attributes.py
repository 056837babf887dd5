"""An image's attributes: the core ones and how a given value is checked, extra properties
(strings, shown as top-level keys), and which keys are read-only, reserved or admin-only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cascade.identity import AuthContext
from cascade_sim.common import project_of
from cascade_sim.errors import SimError

Check = Callable[[str, Any], Any]

DISK_FORMATS = (None, "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso")
CONTAINER_FORMATS = (None, "ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")
VISIBILITIES = ("public", "private", "shared", "community")
READ_ONLY = {
    "id", "status", "checksum", "os_hash_algo", "os_hash_value", "size", "virtual_size",
    "created_at", "updated_at", "self", "file", "schema", "direct_url", "locations", "stores",
}  # fmt: skip


def invalid(key: str, value: Any, expected: str) -> SimError:
    return SimError(400, f"Invalid value {value!r} for '{key}': {expected} expected.")


def _name(key: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > 255):
        raise invalid(key, value, "null or a string of at most 255 characters")
    return value


def _one_of(*choices: str | None) -> Check:
    def check(key: str, value: Any) -> Any:
        if value not in choices:
            raise invalid(key, value, f"one of {list(choices)}")
        return value

    return check


def _count(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise invalid(key, value, "a non-negative integer")
    return value


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise invalid(key, value, "a boolean")
    return value


def tags(key: str, value: Any) -> list[str]:
    """A list of tags, each once."""
    if not isinstance(value, list) or not all(_is_tag(tag) for tag in value):
        raise invalid(key, value, "a list of strings of 1 to 255 characters")
    return list(dict.fromkeys(value))


def _is_tag(tag: Any) -> bool:
    return isinstance(tag, str) and 0 < len(tag) <= 255


def _owner(key: str, value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 255:
        raise invalid(key, value, "a project id")
    return value


def _property(key: str, value: Any) -> str:
    if len(key) > 255 or not isinstance(value, str) or len(value) > 65535:
        raise invalid(key, value, "a string (extra properties are strings)")
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
    "tags": tags,
    "owner": _owner,
}


def guard(key: str) -> None:
    """403 for a key no one may set or remove."""
    if key in READ_ONLY:
        raise SimError(403, f"Attribute '{key}' is read-only.")
    if key.startswith(("os_glance", "_")):
        raise SimError(403, f"Attribute '{key}' is reserved.")


def checked(caller: AuthContext, key: str, value: Any) -> Any:
    """A value the caller may give ``key``: 403 for read-only, reserved and admin-only ones."""
    guard(key)
    if key == "owner" and not caller.is_admin and value != project_of(caller):
        raise SimError(403, "Owner can't be updated by non admin.")
    if key == "visibility" and value == "public" and not caller.is_admin:
        raise SimError(403, "You are not authorized to complete publicize_image action.")
    check: Check = CORE.get(key, _property)
    return check(key, value)
