"""Manage by reference (admin): the files a volume can adopt (under ``volumes/unmanaged/``,
and the replicas in the replica directories of the site's volume types: see
``replication``), their adoption, and the one pool (``host``) they are adopted into. An
adopted file is hard-linked to the volume's name, the volume recorded, and only then the
unmanaged name removed, so a crash leaves both names usable (see ``recovery``)."""

from __future__ import annotations

import os

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from cascade.api.keystone import Caller
from cascade.identity import authorize
from cascade_sim.common import RegionDep, project_of
from cascade_sim.errors import SimError
from cascade_sim.volume.bodies import Metadata, Strict, Text
from cascade_sim.volume.disk import GIB, data_file, gib
from cascade_sim.volume.records import Json, check_zone, detailed, due_at, save
from cascade_sim.volume.replication import manageable_files
from cascade_sim.volume.volume_types import find_volume_type, replica_dir, volume_types
from cascade_sim.volume.volumes import new_volume, volume_view


class ManageRef(BaseModel):
    model_config = ConfigDict(extra="ignore")
    source_name: str = Field(
        alias="source-name", min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$"
    )


class ManageSpec(Strict):
    host: str = Field(min_length=1, max_length=255)
    ref: ManageRef
    name: Text | None = None
    description: Text | None = None
    volume_type: str | None = None
    availability_zone: str | None = None
    metadata: Metadata | None = None
    bootable: bool = False
    cluster: str | None = None


class ManageRequest(Strict):
    volume: ManageSpec


# not gated at 3.8 as Cinder does: openstacksdk lists manageable volumes without a microversion
manageable = APIRouter()


@manageable.get("/manageable_volumes", summary="Volumes on the backend Cinder could adopt (admin)")
@manageable.get("/manageable_volumes/detail", summary="The same, with details (admin)")
def list_manageable(request: Request, caller: Caller, site: RegionDep) -> Json:
    authorize(caller, "admin")
    entries = []
    for path in manageable_files(site).values():
        linked = path.stat().st_nlink > 1  # being adopted right now
        entry: Json = {
            "reference": {"source-name": path.name},
            "size": gib(path.stat().st_size),
            "safe_to_manage": not linked,
        }
        if detailed(request):
            reason = "already being managed" if linked else None
            entry |= {"reason_not_safe": reason, "cinder_id": None, "extra_info": None}
        entries.append(entry)
    return {"manageable-volumes": entries}


@manageable.post("/manageable_volumes", status_code=202, summary="Adopt a volume (admin)")
def manage_volume(body: ManageRequest, caller: Caller, site: RegionDep) -> Json:
    authorize(caller, "admin")
    spec = body.volume
    check_zone(spec.availability_zone, "volume.availability_zone")
    volume_type = find_volume_type(site, spec.volume_type, "volume.volume_type")
    with site.state.lock:
        source = manageable_files(site).get(spec.ref.source_name)
        if source is None:
            raise SimError(
                400, f"volume.ref.source-name: no unmanaged volume {spec.ref.source_name!r} here."
            )
        if source.stat().st_nlink > 1:
            raise SimError(409, f"volume.ref.source-name: {source.name} is already being managed.")
        volume = new_volume(
            site,
            project_of(caller),
            caller.user.id,
            gib(source.stat().st_size),
            name=spec.name,
            description=spec.description,
            metadata=spec.metadata or {},
            volume_type=volume_type["name"],
            bootable=str(spec.bootable).lower(),
            _due=due_at(site),
            **{"os-vol-host-attr:host": spec.host},
        )
        target = data_file(site, "volume", volume["id"])
        os.link(source, target)  # linked, recorded, unlinked: a crash leaves both names usable
        os.truncate(target, volume["size"] * GIB)
        save(site, "volume", volume)
        source.unlink()
    return {"volume": volume_view(site, volume)}


@manageable.get("/scheduler-stats/get_pools", summary="The backend's pools (admin)")
def list_pools(caller: Caller, site: RegionDep) -> Json:
    """The one pool of this site's backend: the ``host`` a volume is managed into."""
    authorize(caller, "admin")
    replicates = any(replica_dir(t) is not None for t in volume_types(site))
    capabilities = {"volume_backend_name": "sim", "replication_enabled": replicates}
    return {"pools": [{"name": f"{site.config.name}@sim#sim", "capabilities": capabilities}]}
