"""Keystone-compatible identity over HTTP, for every app that serves it: Cascade's own API, a
site's identity replica, and an emulated region (``cascade_sim``), whose services answer
behind the same token check.

The public surface for other products: ``Caller`` (the token check as a dependency),
``Renderer`` and ``keystone_body`` (error bodies), ``identity_routers`` and ``serve_keystone``.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from cascade.api import (
    errors,
    identity_app_credentials,
    identity_assignments,
    identity_auth,
    identity_credentials,
    identity_domain_config,
    identity_endpoint_groups,
    identity_groups,
    identity_inferences,
    identity_projects,
    identity_resources,
    identity_trusts,
    replica,
    versions,
)
from cascade.api.deps import Caller
from cascade.api.errors import Renderer, keystone_body
from cascade.api.replica import FollowMaster
from cascade.api.routes import behind_prefix
from cascade.identity.services import IdentityServices

__all__ = [
    "Caller",
    "FollowMaster",
    "Renderer",
    "identity_routers",
    "keystone_body",
    "serve_keystone",
]


def identity_routers() -> list[APIRouter]:
    """Version discovery, /identity/v3/auth, the Keystone resources, role assignments and
    group membership."""
    return [
        versions.router,
        identity_auth.router,
        identity_auth.passwords,
        identity_projects.router,
        identity_inferences.router,
        identity_domain_config.router,
        *identity_resources.routers(),
        *identity_assignments.routers(),
        identity_groups.router,
        identity_app_credentials.router,
        identity_trusts.router,
        identity_credentials.router,
        identity_endpoint_groups.router,
    ]


def serve_keystone(
    app: FastAPI,
    services: IdentityServices,
    follow_master: FollowMaster,
    render: Renderer = keystone_body,
) -> None:
    """Serve ``services`` as Keystone on ``app``, errors rendered by ``render``, and accept
    ``PUT /identity-replica/v1/master`` (``follow_master``) to follow a master's identity."""
    app.state.services = services
    app.state.follow_master = follow_master
    errors.install(app, render=render)
    for router in (*identity_routers(), replica.router):
        app.include_router(behind_prefix(router))
