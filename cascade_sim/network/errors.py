"""Neutron's errors: a status, an exception type (``NetworkNotFound``) and a message, which
``cascade_sim.errors`` renders as a ``NeutronError`` body."""

from __future__ import annotations

from cascade_sim.errors import SimError


def error(status: int, neutron_type: str, message: str) -> SimError:
    return SimError(status, message, neutron_type=neutron_type)


def bad(message: str, neutron_type: str = "HTTPBadRequest") -> SimError:
    return error(400, neutron_type, message)


def invalid(attr: str, reason: str) -> SimError:
    return bad(f"Invalid input for {attr}. Reason: {reason}.")


def forbidden(rule: str) -> SimError:
    return error(403, "PolicyNotAuthorized", f"({rule}) is disallowed by policy")
