"""Keystone ``/identity/v3/domains/{domain_id}/config``: a domain's configuration, whole
(``PUT``, ``GET``, ``PATCH``, ``DELETE``), by group (``/{group}``) and by option
(``/{group}/{option}``), and Keystone's defaults (``/domains/config[/{group}[/{option}]]/
default``). The rules are ``cascade.identity.domain_config``'s; Cascade stores the
configuration and acts on none of it. Writes need ``admin``; reads an admin or a system
reader, but a domain's ``security_compliance`` group any token (as Keystone's policy).

No ``from __future__ import annotations`` here: the handlers are made per path in ``_serve``
and FastAPI reads their annotations, which name its arguments, when they are defined.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, Field

from cascade.api.deps import Caller, IdentityDep
from cascade.api.errors import error_responses
from cascade.api.identity_resources import PREFIX
from cascade.identity import domain_config
from cascade.identity.policy import authorize

router = APIRouter(prefix=PREFIX + "/domains", tags=["identity: domain configuration"])

DomainId = Annotated[str, Path(min_length=1, max_length=64)]
Group = Annotated[str, Path(min_length=1, max_length=64)]
Option = Annotated[str, Path(min_length=1, max_length=64)]
READ = error_responses(401, 403, 404)
WRITE = error_responses(400, 401, 403, 404)


class ConfigBody(BaseModel):
    """``{"config": {group: {option: value}}}``, or ``{"config": {option: value}}`` at an
    option's path. What may be configured is checked as Keystone does (403)."""

    config: dict[str, Any] = Field(default_factory=dict)


class ConfigResponse(BaseModel):
    """Groups of options (``{group: {option: value}}``), or one option (``{option: value}``)
    at an option's path; never a sensitive option."""

    config: dict[str, Any]


@dataclass(frozen=True)
class Target:
    """The part of a domain's configuration a path names."""

    domain_id: str
    group: str | None = None
    option: str | None = None


def _defaults() -> Target:
    return Target("")


def _group_defaults(group: Group) -> Target:
    return Target("", group)


def _option_default(group: Group, option: Option) -> Target:
    return Target("", group, option)


def _whole(domain_id: DomainId) -> Target:
    return Target(domain_id)


def _group(domain_id: DomainId, group: Group) -> Target:
    return Target(domain_id, group)


def _option(domain_id: DomainId, group: Group, option: Option) -> Target:
    return Target(domain_id, group, option)


@router.put(
    "/{domain_id}/config",
    response_model=ConfigResponse,
    status_code=201,
    responses={200: {"description": "Replaced the configuration the domain had"}, **WRITE},
    summary="Set a domain's whole configuration (201 if it had none, 200 if replaced)",
)
def create_config(
    domain_id: DomainId, body: ConfigBody, caller: Caller, svc: IdentityDep, response: Response
) -> dict[str, Any]:
    authorize(caller, "admin")
    config, created = domain_config.create(svc.store, domain_id, body.config)
    response.status_code = 201 if created else 200
    return {"config": config}


def _serve_default(path: str, target: Callable[..., Target], what: str) -> None:
    """GET of Keystone's defaults (``what``) at ``path``."""

    @router.get(
        path,
        response_model=ConfigResponse,
        responses=error_responses(401, 403),
        summary=f"Keystone's default {what}",
    )
    def show_default(where: Annotated[Target, Depends(target)], caller: Caller) -> dict[str, Any]:
        authorize(caller, "reader")
        return {"config": domain_config.default(where.group, where.option)}


# Before the domains' paths: "config" is no domain id.
_serve_default("/config/default", _defaults, "domain configuration")
_serve_default("/config/{group}/default", _group_defaults, "configuration of a group")
_serve_default("/config/{group}/{option}/default", _option_default, "of an option")


def _serve(path: str, target: Callable[..., Target], what: str) -> None:
    """GET, PATCH and DELETE of ``what`` at ``path``."""

    @router.get(path, response_model=ConfigResponse, responses=READ, summary=f"Show {what}")
    def show(
        where: Annotated[Target, Depends(target)], caller: Caller, svc: IdentityDep
    ) -> dict[str, Any]:
        if where.group == domain_config.SECURITY_COMPLIANCE:
            return {"config": domain_config.security_compliance(where.domain_id, where.option)}
        authorize(caller, "reader")
        return {"config": domain_config.shown(svc.db, where.domain_id, where.group, where.option)}

    @router.patch(
        path,
        response_model=ConfigResponse,
        responses=WRITE,
        summary=f"Update {what}; the whole configuration is answered",
    )
    def update(
        where: Annotated[Target, Depends(target)],
        body: ConfigBody,
        caller: Caller,
        svc: IdentityDep,
    ) -> dict[str, Any]:
        authorize(caller, "admin")
        store = svc.store
        config = domain_config.update(
            store, where.domain_id, body.config, where.group, where.option
        )
        return {"config": config}

    @router.delete(path, status_code=204, responses=WRITE, summary=f"Delete {what}")
    def remove(
        where: Annotated[Target, Depends(target)], caller: Caller, svc: IdentityDep
    ) -> Response:
        authorize(caller, "admin")
        domain_config.delete_config(svc.store, where.domain_id, where.group, where.option)
        return Response(status_code=204)


_serve("/{domain_id}/config", _whole, "a domain's configuration")
_serve("/{domain_id}/config/{group}", _group, "a group of a domain's configuration")
_serve("/{domain_id}/config/{group}/{option}", _option, "an option of a domain's configuration")
