"""Keystone ``/identity/v3`` credentials: ``/credentials`` (create, list with ``user_id`` and
``type`` filters, show, update, delete) and a user's EC2 keys
(``/users/{user_id}/credentials/OS-EC2[/{access}]``: create, list, show, delete), stored as
``ec2`` credentials whose id is the SHA-256 of the access key, as Keystone stores them. The
blobs are encrypted at rest (``cascade.identity.credentials``).

A user may create, read, change and delete its own credentials and EC2 keys; anyone else's
need an admin (a system reader may read them). Listing without admin or system reader shows
only the caller's own.
"""

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from cascade.api.deps import Caller, IdentityDep
from cascade.api.errors import error_responses
from cascade.api.identity_resources import PREFIX, base_url
from cascade.errors import Forbidden, NotFound
from cascade.identity import schemas
from cascade.identity.credentials import EC2, ec2_blob, ec2_id
from cascade.identity.policy import authorize
from cascade.identity.tokens import AuthContext

CredentialId = Annotated[str, Path(min_length=1, max_length=64)]
UserId = Annotated[str, Path(min_length=1, max_length=64)]
AccessKey = Annotated[str, Path(min_length=1, max_length=255)]
Blob = Field(max_length=65535)


class _Body(BaseModel):
    """Keystone keeps a credential's attributes it does not know, and checks the others."""

    model_config = ConfigDict(extra="allow", strict=True)


class CredentialIn(_Body):
    user_id: str = Field(min_length=1, max_length=64)
    type: str = Field(min_length=1, max_length=255)
    blob: str = Blob
    project_id: str | None = Field(None, min_length=1, max_length=64)
    id: str | None = Field(None, min_length=1, max_length=64)


class CredentialPatch(_Body):
    user_id: str | None = Field(None, min_length=1, max_length=64)
    type: str | None = Field(None, min_length=1, max_length=255)
    blob: str | None = Field(None, max_length=65535)
    project_id: str | None = Field(None, min_length=1, max_length=64)


class CredentialOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    user_id: str
    project_id: str | None
    type: str
    blob: str
    links: schemas.SelfLink


class CredentialBody(BaseModel):
    credential: CredentialIn


class CredentialPatchBody(BaseModel):
    credential: CredentialPatch


class OneCredential(BaseModel):
    credential: CredentialOut


class CredentialList(BaseModel):
    credentials: list[CredentialOut]
    links: schemas.Links


class Ec2In(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    tenant_id: str = Field(min_length=1, max_length=64)


class Ec2Out(BaseModel):
    user_id: str
    tenant_id: str | None
    access: str
    secret: str
    trust_id: str | None = None
    links: schemas.SelfLink


class OneEc2(BaseModel):
    credential: Ec2Out


class Ec2List(BaseModel):
    credentials: list[Ec2Out]
    links: schemas.Links


router = APIRouter(prefix=PREFIX, tags=["identity: credentials"])
READ = error_responses(401, 403, 404, 503)
WRITE = error_responses(400, 401, 403, 404, 409, 503)


def _links(request: Request) -> dict[str, Any]:
    return {"self": str(request.url), "previous": None, "next": None}


def _may_touch(caller: AuthContext, user_id: str, need: str) -> None:
    """A user's own credentials are its to use; anyone else's need ``need`` (admin to
    change them, a system reader to read them)."""
    if caller.user.id != user_id:
        authorize(caller, "admin" if need == "admin" else "reader")


def _rendered(found: dict[str, Any], base: str) -> dict[str, Any]:
    body = {key: value for key, value in found.items() if key != "extra"}
    body["links"] = {"self": f"{base}/v3/credentials/{found['id']}"}
    return {**found["extra"], **body}


def _fields(given: BaseModel, set_only: bool) -> dict[str, Any]:
    unknown = dict(given.model_extra or {})
    fields = given.model_dump(exclude_unset=set_only, exclude=set(unknown))
    if unknown:
        fields["extra"] = unknown
    return fields


@router.post(
    "/credentials",
    status_code=201,
    response_model=OneCredential,
    summary="Create a credential (its blob is stored encrypted)",
    responses=WRITE,
)
def create_credential(
    body: CredentialBody, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    _may_touch(caller, body.credential.user_id, "admin")
    made = svc.user_credentials.create(_fields(body.credential, set_only=False))
    return {"credential": _rendered(made, base_url(request))}


@router.get(
    "/credentials",
    response_model=CredentialList,
    summary="List credentials (a user's own only, unless admin or system reader)",
    responses=error_responses(400, 401, 503),
)
def list_credentials(
    caller: Caller,
    svc: IdentityDep,
    request: Request,
    user_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    kind: Annotated[str | None, Query(alias="type", min_length=1, max_length=255)] = None,
) -> dict[str, Any]:
    try:
        authorize(caller, "reader")
    except Forbidden:  # Keystone filters the list to the caller's own
        if user_id not in (None, caller.user.id):
            return {"credentials": [], "links": _links(request)}
        user_id = caller.user.id
    found = svc.user_credentials.find(user_id, kind)
    base = base_url(request)
    return {"credentials": [_rendered(c, base) for c in found], "links": _links(request)}


def _owned(svc: Any, caller: AuthContext, credential_id: str, need: str) -> dict[str, Any]:
    """The credential (404 if there is none), if the caller may ``need`` it (403)."""
    found: dict[str, Any] = svc.user_credentials.get(credential_id)
    _may_touch(caller, found["user_id"], need)
    return found


@router.get(
    "/credentials/{credential_id}",
    response_model=OneCredential,
    summary="Show a credential",
    responses=READ,
)
def show_credential(
    credential_id: CredentialId, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    found = _owned(svc, caller, credential_id, "reader")
    return {"credential": _rendered(found, base_url(request))}


@router.patch(
    "/credentials/{credential_id}",
    response_model=OneCredential,
    summary="Update a credential",
    responses=WRITE,
)
def update_credential(
    credential_id: CredentialId,
    body: CredentialPatchBody,
    caller: Caller,
    svc: IdentityDep,
    request: Request,
) -> dict[str, Any]:
    current = _owned(svc, caller, credential_id, "admin")
    fields = _fields(body.credential, set_only=True)
    if "user_id" in fields:  # handing it to another user is that user's business too
        _may_touch(caller, fields["user_id"], "admin")
    if "extra" in fields:
        fields["extra"] = {**current["extra"], **fields["extra"]}
    changed = svc.user_credentials.update(credential_id, fields)
    return {"credential": _rendered(changed, base_url(request))}


@router.delete(
    "/credentials/{credential_id}",
    status_code=204,
    summary="Delete a credential",
    responses=READ,
)
def delete_credential(credential_id: CredentialId, caller: Caller, svc: IdentityDep) -> Response:
    _owned(svc, caller, credential_id, "admin")
    svc.user_credentials.delete(credential_id)
    return Response(status_code=204)


# ---- OS-EC2 ---------------------------------------------------------------------------------

EC2_PATH = "/users/{user_id}/credentials/OS-EC2"


def _ec2(found: dict[str, Any], base: str) -> dict[str, Any]:
    blob = ec2_blob(found["blob"])
    access = blob["access"]
    return {
        "user_id": found["user_id"],
        "tenant_id": found["project_id"],
        "access": access,
        "secret": blob.get("secret", ""),
        "trust_id": blob.get("trust_id"),
        "links": {"self": f"{base}/v3/users/{found['user_id']}/credentials/OS-EC2/{access}"},
    }


def _ec2_of(svc: Any, user_id: str, access: str) -> dict[str, Any]:
    try:
        found: dict[str, Any] = svc.user_credentials.get(ec2_id(access))
    except NotFound:
        found = {}
    if found.get("user_id") != user_id or found.get("type") != EC2:
        raise NotFound(f"Could not find credential: {access}.")
    return found


@router.post(
    EC2_PATH,
    status_code=201,
    response_model=OneEc2,
    summary="Create EC2 keys for a user in a project",
    responses=WRITE,
)
def create_ec2(
    user_id: UserId, body: Ec2In, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    _may_touch(caller, user_id, "admin")
    snapshot = svc.identity.cached()
    if user_id not in snapshot.users:
        raise NotFound(f"Could not find user: {user_id}.")
    if body.tenant_id not in snapshot.projects:
        raise NotFound(f"Could not find project: {body.tenant_id}.")
    blob = {"access": uuid.uuid4().hex, "secret": uuid.uuid4().hex, "trust_id": None}
    fields = {"user_id": user_id, "project_id": body.tenant_id, "type": EC2}
    made = svc.user_credentials.create({**fields, "blob": json.dumps(blob)})
    return {"credential": _ec2(made, base_url(request))}


@router.get(EC2_PATH, response_model=Ec2List, summary="A user's EC2 keys", responses=READ)
def list_ec2(user_id: UserId, caller: Caller, svc: IdentityDep, request: Request) -> dict[str, Any]:
    _may_touch(caller, user_id, "reader")
    base = base_url(request)
    found = [_ec2(c, base) for c in svc.user_credentials.find(user_id, EC2)]
    return {"credentials": found, "links": _links(request)}


@router.get(EC2_PATH + "/{access}", response_model=OneEc2, summary="Show EC2 keys", responses=READ)
def show_ec2(
    user_id: UserId, access: AccessKey, caller: Caller, svc: IdentityDep, request: Request
) -> dict[str, Any]:
    _may_touch(caller, user_id, "reader")
    return {"credential": _ec2(_ec2_of(svc, user_id, access), base_url(request))}


@router.delete(EC2_PATH + "/{access}", status_code=204, summary="Delete EC2 keys", responses=READ)
def delete_ec2(user_id: UserId, access: AccessKey, caller: Caller, svc: IdentityDep) -> Response:
    _may_touch(caller, user_id, "admin")
    svc.user_credentials.delete(_ec2_of(svc, user_id, access)["id"])
    return Response(status_code=204)
