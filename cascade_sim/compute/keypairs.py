"""Nova keypairs (``/os-keypairs``): per user, imported or generated (ed25519); listed sorted
by name and, from microversion 2.35, paged as Nova pages them (``limit``, at most
``MAX_LIMIT``; ``marker``, the previous page's last name; a ``keypairs_links`` next link when a
page is full)."""

from __future__ import annotations

import base64
import hashlib
from typing import Annotated, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi import APIRouter, Body, Path, Request

from cascade.api.keystone import Caller
from cascade.identity import AuthContext
from cascade_sim.common import RegionDep, project_of, public
from cascade_sim.errors import SimError
from cascade_sim.microversions import Microversion, NovaVersion
from cascade_sim.region import Region
from cascade_sim.state import now_iso

router = APIRouter(prefix="/compute/v2.1", tags=["compute"])
MAX_LIMIT = 1000  # Nova's [api] max_limit default
PAGED = Microversion(2, 35)
KeypairName = Annotated[str, Path(min_length=1, max_length=255, pattern=r"^[\w\-. @]+$")]


def _key(caller: AuthContext, name: str) -> str:
    return f"{caller.user.id}:{name}"


def get(site: Region, caller: AuthContext, name: str) -> dict[str, Any]:
    keypair = site.state.get("keypair", _key(caller, name))
    if keypair is None:
        raise SimError(404, f"Keypair {name} not found for user {caller.user.id}")
    return keypair


def _fingerprint(public_key: str) -> str:
    try:
        blob = base64.b64decode(public_key.split()[1], validate=True)
    except (IndexError, ValueError) as error:
        raise SimError(400, "Keypair data is invalid: not an OpenSSH public key.") from error
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _generate() -> tuple[str, str]:
    private = ed25519.Ed25519PrivateKey.generate()
    public_key = (
        private.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    return public_key, private_pem


def _view(keypair: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in public(keypair).items() if k != "id"}


def _one(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise SimError(400, f"Invalid input for query parameters {name}: given more than once.")
    return values[0] if values else None


def _limit(request: Request) -> int:
    """Nova's ``limit``: a non-negative integer, capped at ``MAX_LIMIT``."""
    text = _one(request, "limit")
    if text is None:
        return MAX_LIMIT
    if not text.isascii() or not text.isdigit():
        raise SimError(
            400, f"Invalid input for query parameters limit. Value: {text}. Not a valid integer."
        )
    return min(int(text), MAX_LIMIT)


def _page(keypairs: list[dict[str, Any]], request: Request) -> tuple[list[dict[str, Any]], bool]:
    """One page of ``keypairs`` (sorted by name) and whether it is full (a next link)."""
    limit = _limit(request)
    marker = _one(request, "marker")
    if marker is not None:
        names = [k["name"] for k in keypairs]
        if marker not in names:
            raise SimError(400, f"Marker {marker} could not be found.")
        keypairs = keypairs[names.index(marker) + 1 :]
    page = keypairs[:limit]
    return page, bool(page) and len(page) == limit


@router.get("/os-keypairs", summary="List keypairs")
def list_keypairs(
    request: Request, caller: Caller, site: RegionDep, mv: NovaVersion
) -> dict[str, Any]:
    mine = sorted(
        (k for k in site.state.list("keypair") if k["user_id"] == caller.user.id),
        key=lambda k: str(k["name"]),
    )
    full = False
    if mv >= PAGED:
        mine, full = _page(mine, request)
    body: dict[str, Any] = {"keypairs": [{"keypair": _view(k)} for k in mine]}
    if full:
        following = request.url.include_query_params(marker=mine[-1]["name"])
        body["keypairs_links"] = [{"rel": "next", "href": str(following)}]
    return body


@router.post("/os-keypairs", summary="Create or import a keypair")
def create_keypair(
    body: Annotated[dict[str, Any], Body()], caller: Caller, site: RegionDep
) -> dict[str, Any]:
    spec = body.get("keypair")
    name = spec.get("name") if isinstance(spec, dict) else None
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise SimError(400, "keypair.name is required (1 to 255 characters).")
    if site.state.get("keypair", _key(caller, name)) is not None:
        raise SimError(409, f"Key pair '{name}' already exists.")
    given = spec.get("public_key") if isinstance(spec, dict) else None
    private_key = None
    if given is None:
        public_key, private_key = _generate()
    elif isinstance(given, str):
        public_key = given.strip()
    else:
        raise SimError(400, "keypair.public_key must be a string.")
    keypair = {
        "id": _key(caller, name),
        "name": name,
        "public_key": public_key,
        "fingerprint": _fingerprint(public_key),
        "type": "ssh",
        "user_id": caller.user.id,
        "created_at": now_iso(),
        "_project_id": project_of(caller),
    }
    site.state.put("keypair", keypair, keypair["_project_id"])
    view = _view(keypair)
    if private_key is not None:
        view["private_key"] = private_key
    return {"keypair": view}


@router.get("/os-keypairs/{name}", summary="Show a keypair")
def show_keypair(name: KeypairName, caller: Caller, site: RegionDep) -> dict[str, Any]:
    return {"keypair": _view(get(site, caller, name))}


@router.delete("/os-keypairs/{name}", status_code=202, summary="Delete a keypair")
def delete_keypair(name: KeypairName, caller: Caller, site: RegionDep) -> None:
    get(site, caller, name)
    site.state.delete("keypair", _key(caller, name))
