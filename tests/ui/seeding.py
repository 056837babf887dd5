"""Rows for the dashboard's detail pages, written straight to the database (no site, no
worker): two sites of a project, a network stretched over both with ports, a service IP and
a fabric network carrying its VNI, a protection plan with checkpoints and restores (the
newest with its operation's steps), and a replication job with resources at both sites.
``scale`` sets how many ports, hosts, checkpoints, restores and job resources there are.
``seed_policies`` writes replication policies alone, each with jobs, items and failures."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from cascade.db.models import (
    FabricHost,
    FabricMembership,
    FabricNetwork,
    Operation,
    OperationStep,
    Site,
)
from cascade.db.network_models import Network, NetworkPort, NetworkSegment, ServiceIP
from cascade.db.protection_models import Checkpoint, CheckpointVolume, ProtectionPlan, Restore
from cascade.db.replication_models import (
    ReplicaFailure,
    ReplicationItem,
    ReplicationJob,
    ReplicationPolicy,
)
from cascade.services import Services


@dataclass(frozen=True)
class Seeded:
    tag: str  # the start of its sites' names
    network: str
    plan: str
    job: str
    policy: str
    restore_operation: str


def _sites(session: Session, project_id: str, tag: str) -> list[Site]:
    sites = [
        Site(name=f"{tag}-{n}", region_name=f"{tag}-R{n}", identity_url="http://127.0.0.1:9/v3",
             username="admin", site_project_name="admin", credential=b"secret-credential",
             project_id=project_id, identity_mode="own")
        for n in ("a", "b")
    ]  # fmt: skip
    session.add_all(sites)
    session.flush()
    return sites


def _network(session: Session, project_id: str, sites: list[Site], tag: str, scale: int) -> str:
    vni = random.randrange(100_000, 16_000_000)
    network = Network(name=f"{tag}-net", project_id=project_id, cidr="10.9.0.0/16", vni=vni,
                      status="ACTIVE")  # fmt: skip
    session.add(network)
    session.add(FabricNetwork(id=f"{tag}-fabric", vni=vni, cidr="10.9.0.0/16", revision=4))
    session.flush()
    for site in sites:
        session.add(NetworkSegment(network_id=network.id, site_id=site.id, status="present",
                                   site_network_id=f"{site.name}-neutron-net"))  # fmt: skip
    ports = []
    for n in range(scale):
        host = f"{tag}-host-{n}"
        session.add(FabricHost(name=host, tunnel_ip=f"192.0.2.{n % 250}", revision=1,
                               applied_revision=1))  # fmt: skip
        session.flush()
        session.add(FabricMembership(host=host, network_id=f"{tag}-fabric",
                                     applied_revision=4 if n % 2 == 0 else 3))  # fmt: skip
        mac = f"fa:16:3e:00:{n // 256:02x}:{n % 256:02x}"
        port = NetworkPort(network_id=network.id, site_id=sites[n % 2].id, server_id=f"vm-{n}",
                           ip=f"10.9.{n // 250}.{n % 250 + 2}", mac=mac, host=host)  # fmt: skip
        session.add(port)
        ports.append(port)
    session.flush()
    session.add(ServiceIP(project_id=project_id, network_id=network.id, ip="10.9.255.1",
                          holder_port_id=ports[0].id, status="ACTIVE",
                          moved_at=datetime.now(UTC), switchover_s=1.25))  # fmt: skip
    return network.id


def _operation(session: Session, project_id: str, kind: str, now: datetime) -> str:
    operation_id = uuid.uuid4().hex
    session.add(Operation(id=operation_id, kind=kind, resource_type="restore",
                          resource_id=operation_id, project_id=project_id, status="succeeded",
                          request={}, request_hash="h", created_at=now,
                          finished_at=now + timedelta(seconds=9)))  # fmt: skip
    for n, name in enumerate(("restore.volumes", "restore.servers", "restore.ports")):
        session.add(OperationStep(operation_id=operation_id, name=name, status="succeeded",
                                  started_at=now + timedelta(seconds=3 * n),
                                  finished_at=now + timedelta(seconds=3 * n + 2)))  # fmt: skip
    return operation_id


def _plan(session: Session, project_id: str, sites: list[Site], scale: int) -> tuple[str, str]:
    now = datetime.now(UTC)
    plan = ProtectionPlan(project_id=project_id, name=f"{sites[0].name}-plan",
                          source_site_id=sites[0].id, target_site_id=sites[1].id,
                          strategy="backup", freeze_bound_s=5.0, retention=scale,
                          chunk_store=f"site://{sites[1].name}/chunks", checkpoint_every_s=3600,
                          status="ACTIVE")  # fmt: skip
    session.add(plan)
    session.flush()
    for n in range(scale):
        at = now - timedelta(minutes=scale - n)
        thaw = at + timedelta(seconds=0.4)
        checkpoint = Checkpoint(plan_id=plan.id, project_id=project_id, status="available",
                                operation_id=uuid.uuid4().hex, consistency_point=at,
                                store_url=plan.chunk_store, backed_up_at=at, frozen=[],
                                first_freeze_at=at, last_thaw_at=thaw)  # fmt: skip
        session.add(checkpoint)
        session.flush()
        for volume in ("vol-1", "vol-2"):
            session.add(CheckpointVolume(checkpoint_id=checkpoint.id, volume_id=volume,
                                         server_id="vm-0", position=0, device=f"/dev/{volume}",
                                         snapshot_id=f"snap-{n}", status="available",
                                         changed_blocks=8, done_blocks=8))  # fmt: skip
    newest = ""
    for n in range(scale):
        at = now - timedelta(minutes=scale - n)
        newest = _operation(session, project_id, "restore.run", at)
        session.add(Restore(project_id=project_id, plan_id=plan.id, checkpoint_id="c",
                            target_site_id=sites[1].id, status="completed", operation_id=newest,
                            volumes={"vol-1": {"volume": "t1", "blocks": 8, "written": 8,
                                               "verified": True}},
                            servers={"vm-0": "vm-0-restored"}, started_at=at,
                            finished_at=at + timedelta(seconds=9), rto_s=9.0 + n,
                            created_at=at))  # fmt: skip
    return plan.id, newest


def _job(session: Session, project_id: str, sites: list[Site], scale: int) -> tuple[str, str]:
    policy = ReplicationPolicy(project_id=project_id, kind="images", source_site_id=sites[0].id,
                               conflict="report", status="ACTIVE", drift={})  # fmt: skip
    session.add(policy)
    session.flush()
    job = ReplicationJob(policy_id=policy.id, project_id=project_id, reason="created",
                         operation_id=uuid.uuid4().hex, status="running")  # fmt: skip
    session.add(job)
    session.flush()
    for n in range(scale):
        for site in sites[1:]:
            session.add(ReplicationItem(job_id=job.id, site_id=site.id, name=f"image-{n}",
                                        action="create", status="done" if n % 2 else "running",
                                        bytes_done=50 * (1 + n % 2), bytes_total=100))  # fmt: skip
    return job.id, policy.id


def seed_world(services: Services, project_id: str, scale: int) -> Seeded:
    tag = f"t{uuid.uuid4().hex[:12]}"
    with services.db.session() as session:
        sites = _sites(session, project_id, tag)
        network = _network(session, project_id, sites, tag, scale)
        plan, restore_operation = _plan(session, project_id, sites, scale)
        job, policy = _job(session, project_id, sites, scale)
    return Seeded(tag, network, plan, job, policy, restore_operation)


def seed_policies(services: Services, project_id: str, count: int) -> None:
    """``count`` policies of the project over two new sites, each with two jobs (the older
    one finished), items of two statuses at the target and a failure there."""
    now = datetime.now(UTC)
    with services.db.session() as session:
        source, target = _sites(session, project_id, f"t{uuid.uuid4().hex[:12]}")
        for n in range(count):
            policy = ReplicationPolicy(project_id=project_id, kind="images",
                                       source_site_id=source.id, conflict="report",
                                       status="ACTIVE", drift={}, created_at=now)  # fmt: skip
            session.add(policy)
            session.flush()
            for age, status in ((2, "succeeded"), (1, "running")):
                job = ReplicationJob(policy_id=policy.id, project_id=project_id,
                                     reason="created", operation_id=uuid.uuid4().hex,
                                     status=status,
                                     created_at=now - timedelta(minutes=age))  # fmt: skip
                session.add(job)
                session.flush()
                for item, state in enumerate(("done", "running", "done")):
                    session.add(ReplicationItem(job_id=job.id, site_id=target.id,
                                                name=f"image-{n}-{item}", action="create",
                                                status=state))  # fmt: skip
            session.add(ReplicaFailure(policy_id=policy.id, site_id=target.id, name=f"image-{n}",
                                       error="refused", failures=1, wait_passes=0))  # fmt: skip
