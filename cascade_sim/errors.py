"""Error bodies as each OpenStack service writes them.

Nova and Cinder: ``{"itemNotFound": {"code": 404, "message": ...}}`` (``badRequest``,
``forbidden``, ``conflictingRequest``, ``overLimit``, ``computeFault``); Neutron:
``{"NeutronError": {"type", "message", "detail"}}``; Glance and Swift: ``{"code", "title",
"message"}`` wrapped in ``error``. Keystone's shape (``cascade.errors``) elsewhere.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from cascade.errors import CascadeError

NOVA_KEYS = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "methodNotAllowed",
    409: "conflictingRequest",
    413: "overLimit",
    503: "serviceUnavailable",
}


class SimError(CascadeError):
    """An error a simulated service answers, with the status it has in OpenStack."""

    def __init__(self, status: int, message: str, neutron_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.neutron_type = neutron_type


def service_of(path: str) -> str:
    return path.strip("/").split("/", 1)[0]


def render(service: str, status: int, message: str, neutron_type: str | None = None) -> Any:
    if service in ("compute", "volume"):
        return {NOVA_KEYS.get(status, "computeFault"): {"code": status, "message": message}}
    if service == "network":
        kind = neutron_type or HTTPStatus(status).phrase.replace(" ", "")
        return {"NeutronError": {"type": kind, "message": message, "detail": ""}}
    return {"error": {"code": status, "title": HTTPStatus(status).phrase, "message": message}}
