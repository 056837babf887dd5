"""Restores, API side: accepting ``restore.run`` for an available checkpoint at a target
site, once its mapping has been checked there. Every flavor, network and image the restored
servers will need, mapped or under their source name, and the availability zone, must exist
at the target: a missing one is a 400 naming it, before anything starts (rather than a
failure at the end of a restore, the one Karbor's users meet). A storage_replication
checkpoint restores only at the plan's target (where its replicas are) and only if it is the
plan's newest (a replica holds one consistency point, the newest shipped); an image_snapshot
checkpoint only at the plan's target, where its image was copied (checked to be there).
A server on (or mapped to) a Cascade network needs that network to span the target, and a
service IP to move needs a restored server on its network (``restore_ports``): 400s too.

May import cascade.protection, cascade.engine, cascade.network (visible sites), cascade.db,
cascade.sites.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from openstack import exceptions as sdk_exceptions
from openstack.connection import Connection
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from cascade.db import Database
from cascade.db.models import Operation, Server, Site
from cascade.db.protection_models import Checkpoint, PlanMember, ProtectionPlan, Restore
from cascade.engine.operations import Operations
from cascade.errors import BadRequest
from cascade.identity.policy import seen, seen_by, sees
from cascade.network.networks import visible_site
from cascade.protection.restore_ports import choose_service_ip, plan_ports
from cascade.protection.schemas import (
    MappingIn,
    RestoreCleanupOut,
    RestoreIn,
    RestoreOut,
    RestorePortOut,
    RestoreServiceIPOut,
    RestoreVolumeOut,
)
from cascade.sites import lookup
from cascade.sites.driver import SiteDriver
from cascade.sites.named import site_names

Drivers = Callable[[str], SiteDriver]
M = TypeVar("M", bound=BaseModel)


def _optional(model: type[M], recorded: dict[str, Any] | None) -> M | None:
    return None if recorded is None else model.model_validate(recorded)


def restore_out(session: Session, restore: Restore) -> RestoreOut:
    """One restore's view, read as a list's are."""
    return restores_out(session, [restore])[0]


def restores_out(session: Session, restores: Sequence[Restore]) -> list[RestoreOut]:
    """The restores' views, their target sites' names read in one statement for all."""
    names = site_names(session)
    return [_restore_out(restore, names[restore.target_site_id]) for restore in restores]


def _restore_out(restore: Restore, target_site: str) -> RestoreOut:
    return RestoreOut(
        id=restore.id,
        project_id=restore.project_id,
        plan_id=restore.plan_id,
        checkpoint=restore.checkpoint_id,
        target_site=target_site,
        mapping=MappingIn.model_validate(restore.mapping),
        status=restore.status,
        volumes={k: RestoreVolumeOut.model_validate(v) for k, v in restore.volumes.items()},
        servers=restore.servers,
        ports={k: RestorePortOut.model_validate(v) for k, v in restore.ports.items()},
        service_ip=_optional(RestoreServiceIPOut, restore.service_ip),
        cleanup=_optional(RestoreCleanupOut, restore.cleanup),
        started_at=restore.started_at,
        finished_at=restore.finished_at,
        rto_s=restore.rto_s,
        error=restore.error,
        operation=restore.operation_id,
        created_at=restore.created_at,
    )


def _checkpoint(session: Session, checkpoint_id: str, projects: set[str] | None) -> Checkpoint:
    checkpoint = session.get(Checkpoint, checkpoint_id)
    if checkpoint is None or not sees(projects, checkpoint.project_id):
        raise BadRequest(f"Unknown checkpoint {checkpoint_id!r}.")
    if checkpoint.status != "available":
        raise BadRequest(
            f"checkpoint {checkpoint_id} is {checkpoint.status}: only an available checkpoint "
            "(backed up) restores"
        )
    return checkpoint


def members(session: Session, checkpoint: Checkpoint) -> list[Server]:
    """The plan's servers, in its order."""
    return list(
        session.scalars(
            select(Server)
            .join(PlanMember, PlanMember.server_id == Server.id)
            .where(PlanMember.plan_id == checkpoint.plan_id)
            .order_by(PlanMember.position)
        )
    )


def needs(
    checkpoint: Checkpoint, servers: list[Server], mapping: MappingIn, on_cascade: set[str]
) -> dict[str, set[str]]:
    """What the restored servers need at the target: flavors, site networks (not for those
    in ``on_cascade``, whose port is on a Cascade network), images (for those that boot from
    their image: mapped, or the copy an image_snapshot checkpoint made), each under its
    mapped name."""
    needed: dict[str, set[str]] = {"flavor": set(), "network": set(), "image": set()}
    for server in servers:
        needed["flavor"].add(mapping.flavors.get(server.flavor, server.flavor))
        if server.network and server.id not in on_cascade:
            needed["network"].add(mapping.networks.get(server.network, server.network))
        if server.id in checkpoint.images:
            needed["image"].add(checkpoint.images[server.id]["target"])
        elif not any(d.get("boot_index") == 0 for d in server.block_devices or []):
            needed["image"].add(mapping.images.get(server.image, server.image))
    return needed


def _check_strategy(
    session: Session, checkpoint: Checkpoint, plan: ProtectionPlan, target: Site
) -> None:
    """Where and which checkpoints of strategies 2 and 3 restore (see the module)."""
    if plan.strategy == "group_snapshot":
        return
    if target.id != plan.target_site_id:
        held = "replicas are" if plan.strategy == "storage_replication" else "image was copied"
        raise BadRequest(
            f"checkpoint {checkpoint.id} of a {plan.strategy} plan restores only at the plan's "
            f"target site, where its {held}"
        )
    if plan.strategy != "storage_replication":
        return
    newest = session.scalar(
        select(Checkpoint.id)
        .where(Checkpoint.plan_id == plan.id, Checkpoint.status == "available")
        .order_by(Checkpoint.created_at.desc(), Checkpoint.id.desc())
        .limit(1)
    )
    if newest != checkpoint.id:
        raise BadRequest(
            f"checkpoint {checkpoint.id} is not the plan's newest ({newest}): the replicas "
            "hold only the newest consistency point"
        )


def missing_at(c: Connection, needed: dict[str, set[str]], zone: str | None) -> list[str]:
    """What the target site lacks of ``needed`` and ``zone``, each named; looked for as the
    restore's server creates will look (``cascade.sites.lookup``)."""
    finders: dict[str, Callable[[Connection, str], Any]] = {
        "flavor": lookup.flavor,
        "network": lookup.network,
        "image": lookup.image,
    }
    missing = []
    for kind, names in needed.items():
        for name in sorted(names):
            try:
                finders[kind](c, name)
            except sdk_exceptions.NotFoundException:
                missing.append(f"{kind} {name!r}")
    if zone is not None and zone not in {z.name for z in c.compute.availability_zones()}:
        missing.append(f"availability zone {zone!r}")
    return missing


@dataclass(frozen=True)
class Accepted:
    """What a restore's checks found: its target site, its ports, its service IP."""

    target_id: str
    ports: dict[str, dict[str, Any]]
    service_ip: dict[str, Any] | None


class RestoreService:
    def __init__(self, db: Database, operations: Operations, drivers: Drivers) -> None:
        self._db = db
        self._operations = operations
        self._drivers = drivers

    def show(self, restore_id: str, projects: set[str] | None) -> RestoreOut:
        with self._db.session() as session:
            return restore_out(session, seen(session, Restore, restore_id, projects, "restore"))

    def restores(self, projects: set[str] | None) -> list[RestoreOut]:
        with self._db.session() as session:
            query = select(Restore).order_by(Restore.created_at, Restore.id)
            query = seen_by(query, Restore.project_id, projects)
            return restores_out(session, session.scalars(query).all())

    def _check_target(self, spec: RestoreIn, projects: set[str] | None) -> Accepted:
        """The target site's id, the restored servers' ports on Cascade networks and the
        service IP to move, once the target is known to have what the restore needs."""
        with self._db.session() as session:
            checkpoint = _checkpoint(session, spec.checkpoint, projects)
            plan = session.get_one(ProtectionPlan, checkpoint.plan_id)
            target = visible_site(session, spec.target_site or plan.target_site_id, projects)
            _check_strategy(session, checkpoint, plan, target)
            servers = members(session, checkpoint)
            ports = plan_ports(session, checkpoint.ports, servers, spec.mapping, target, projects)
            sip = None
            if spec.service_ip is not None:
                sip = choose_service_ip(
                    session, spec.service_ip, spec.service_ip_to, ports, servers, projects
                )
            elif spec.service_ip_to is not None:
                raise BadRequest("service_ip_to names who takes a service IP: give service_ip")
            needed = needs(checkpoint, servers, spec.mapping, set(ports))
        missing = self._drivers(target.id).call(
            f"check the restore's mapping at site {target.name}",
            lambda c: missing_at(c, needed, spec.mapping.availability_zone),
        )
        if missing:
            raise BadRequest(
                f"site {target.name} has no {', no '.join(missing)}: map "
                "them to what it has (mapping) before restoring there"
            )
        return Accepted(target.id, ports, sip)

    def create(
        self, spec: RestoreIn, project_id: str, projects: set[str] | None, key: str | None
    ) -> Operation:
        """Accept a restore; returns its operation (its ``resource_id`` is the restore's)."""
        checked = self._check_target(spec, projects)

        def write(session: Session, operation_id: str) -> tuple[str, str]:
            checkpoint = _checkpoint(session, spec.checkpoint, projects)
            restore = Restore(
                project_id=project_id,
                plan_id=checkpoint.plan_id,
                checkpoint_id=checkpoint.id,
                target_site_id=checked.target_id,
                mapping=spec.mapping.model_dump(),
                ports=checked.ports,
                service_ip=checked.service_ip,
                status="pending",
                operation_id=operation_id,
                volumes={},
                servers={},
            )
            session.add(restore)
            session.flush()
            return "restore", restore.id

        return self._operations.accept(
            kind="restore.run",
            project_id=project_id,
            request=spec.model_dump(),
            write=write,
            idempotency_key=key,
        )
