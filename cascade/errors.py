"""One error model for the whole package.

Every failure a caller can cause is a ``CascadeError`` with an HTTP status and a message
that says what was wrong. The API renders it as Keystone's error body
``{"error": {"code", "title", "message"}}`` on every route; the CLI prints the message on one
line and exits non-zero. Imports nothing from the rest of the package.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TypeVar

T = TypeVar("T")


class CascadeError(Exception):
    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def title(self) -> str:
        return HTTPStatus(self.status).phrase

    def body(self) -> dict[str, dict[str, int | str]]:
        return {"error": {"code": self.status, "title": self.title, "message": self.message}}


class BadRequest(CascadeError):
    status = 400


class Unauthorized(CascadeError):
    status = 401


class Forbidden(CascadeError):
    status = 403


class NotFound(CascadeError):
    status = 404


class Conflict(CascadeError):
    status = 409


class Unavailable(CascadeError):
    status = 503


class Internal(CascadeError):
    """A broken invariant: Cascade's own state is not what its code guarantees."""

    status = 500


def present(value: T | None, what: str) -> T:
    """``value``, which Cascade's own invariants say exists; ``Internal`` naming ``what`` if not."""
    if value is None:
        raise Internal(f"{what} is missing")
    return value
