"""Tables. One declarative base; identity tables follow Keystone's vocabulary."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

DEFAULT_DOMAIN_ID = "default"


def new_id() -> str:
    """A Keystone-style id: 32 hex digits (packs to 16 bytes in Fernet payloads)."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored and returned as aware UTC on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Domain(Base):
    __tablename__ = "domains"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    domain_id: Mapped[str] = mapped_column(ForeignKey("domains.id"))
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # attributes given
    # The parent project, or the domain for a top-level project (as Keystone stores it).
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # Keystone's project acting as a domain: a domain of the same id (its own domain_id).
    is_domain: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    domain_id: Mapped[str] = mapped_column(ForeignKey("domains.id"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    default_project_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # attributes given


class Role(Base):
    """A role; with a ``domain_id``, one of that domain's (Keystone's domain-specific roles:
    never in a token itself, only the global roles it implies). Names stay unique across all
    domains: narrower than Keystone (unique per domain), as SQLite cannot drop the constraint
    without rebuilding a table other tables reference."""

    __tablename__ = "roles"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    domain_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Policy(Base):
    """A policy blob stored for services (Keystone's deprecated ``/v3/policies``)."""

    __tablename__ = "policies"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(255))
    blob: Mapped[str] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # attributes given


class OAuthConsumer(Base):
    """An OAuth 1.0a consumer (OS-OAUTH1); its secret is shown once, at creation."""

    __tablename__ = "oauth_consumers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    secret: Mapped[str] = mapped_column(String(64), default=new_id)


class ImpliedRole(Base):
    """Holding ``prior_role_id`` also grants ``implied_role_id`` (Keystone's role inference)."""

    __tablename__ = "implied_roles"
    prior_role_id: Mapped[str] = mapped_column(ForeignKey("roles.id"), primary_key=True)
    implied_role_id: Mapped[str] = mapped_column(ForeignKey("roles.id"), primary_key=True)


SYSTEM_TARGET = "system"  # the target id of a system role assignment (Keystone's)


class RoleAssignment(Base):
    """A role held by a user on a project, a domain or the system (``target_type``; a
    system assignment's target id is ``SYSTEM_TARGET``)."""

    __tablename__ = "role_assignments"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    target_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role_id: Mapped[str] = mapped_column(ForeignKey("roles.id"), primary_key=True)
    target_type: Mapped[str] = mapped_column(String(16))


class Group(Base):
    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    domain_id: Mapped[str] = mapped_column(ForeignKey("domains.id"))
    description: Mapped[str] = mapped_column(Text, default="")


class GroupMember(Base):
    """A user's membership of a group (Keystone's ``user_group_membership``)."""

    __tablename__ = "group_members"
    group_id: Mapped[str] = mapped_column(ForeignKey("groups.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)


class GroupRoleAssignment(Base):
    """A role held by a group on a project, a domain or the system: every member holds it."""

    __tablename__ = "group_role_assignments"
    group_id: Mapped[str] = mapped_column(ForeignKey("groups.id"), primary_key=True)
    target_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role_id: Mapped[str] = mapped_column(ForeignKey("roles.id"), primary_key=True)
    target_type: Mapped[str] = mapped_column(String(16))


class InheritedRoleAssignment(Base):
    """A role a user or a group (``actor_type``) holds on every project below a domain or a
    project (``target_type``), not on the target itself (Keystone's OS-INHERIT
    ``inherited_to_projects``)."""

    __tablename__ = "inherited_role_assignments"
    actor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    target_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role_id: Mapped[str] = mapped_column(ForeignKey("roles.id"), primary_key=True)
    actor_type: Mapped[str] = mapped_column(String(8))
    target_type: Mapped[str] = mapped_column(String(16))


class Credential(Base):
    """A user's secret for another service (Keystone's ``/v3/credentials``; ``type`` ``ec2``
    for EC2 keys). ``encrypted_blob``: the blob encrypted with the credential key repository's
    primary key, ``key_hash`` naming that key; the clear blob is never stored."""

    __tablename__ = "credentials"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    type: Mapped[str] = mapped_column(String(255))
    encrypted_blob: Mapped[str] = mapped_column(Text)
    key_hash: Mapped[str] = mapped_column(String(64))
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # attributes given


class Region(Base):
    __tablename__ = "regions"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    parent_region_id: Mapped[str | None] = mapped_column(String(255), nullable=True)


class Service(Base):
    __tablename__ = "services"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class Endpoint(Base):
    __tablename__ = "endpoints"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"))
    region_id: Mapped[str | None] = mapped_column(ForeignKey("regions.id"), nullable=True)
    interface: Mapped[str] = mapped_column(String(8))
    url: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class EndpointGroup(Base):
    """Endpoints chosen by ``filters`` (``service_id``, ``region_id``, ``interface``), for
    projects to be associated with (Keystone's OS-EP-FILTER)."""

    __tablename__ = "endpoint_groups"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    filters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ProjectEndpoint(Base):
    """An endpoint associated with a project (OS-EP-FILTER)."""

    __tablename__ = "project_endpoints"
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id"), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)


class ProjectEndpointGroup(Base):
    """An endpoint group associated with a project (OS-EP-FILTER)."""

    __tablename__ = "project_endpoint_groups"
    endpoint_group_id: Mapped[str] = mapped_column(
        ForeignKey("endpoint_groups.id"), primary_key=True
    )
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)


class RevocationEvent(Base):
    """Tokens matching every non-null field and issued at or before ``issued_before`` are void."""

    __tablename__ = "revocation_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    audit_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    issued_before: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdentityRevision(Base):
    """One row: bumped in the same transaction as every identity write."""

    __tablename__ = "identity_revision"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)


class Site(Base):
    """A registered OpenStack region. ``credential`` is Fernet-encrypted; never returned."""

    __tablename__ = "sites"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    region_name: Mapped[str] = mapped_column(String(255), unique=True)
    identity_url: Mapped[str] = mapped_column(Text)
    username: Mapped[str] = mapped_column(String(255))
    user_domain_name: Mapped[str] = mapped_column(String(255), default="Default")
    site_project_name: Mapped[str] = mapped_column(String(255))
    credential: Mapped[bytes] = mapped_column(LargeBinary)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # "own": the site keeps its own identity; "replica": it holds a copy of Cascade's.
    identity_mode: Mapped[str] = mapped_column(String(16), default="own", server_default="own")


# -- engine: operations, the resources they change, workers, convergence passes ---------------


class Operation(Base):
    """One accepted request. Its id is also the id of the durable workflow that carries it out."""

    __tablename__ = "operations"
    __table_args__ = (UniqueConstraint("project_id", "idempotency_key"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str] = mapped_column(String(64), index=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    request_hash: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The worker that last ran it (another one after a crash).
    executor_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OperationStep(Base):
    """A step of an operation, at most one site each; ``attempts`` counts runs (crash retries)."""

    __tablename__ = "operation_steps"
    operation_id: Mapped[str] = mapped_column(
        ForeignKey("operations.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    site: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Server(Base):
    """A server Cascade keeps at one site: desired spec, last known status, the running task.
    ``block_devices``: what it boots from when not only its image (Nova's block device
    mapping, as ``server_steps.block_device_mapping`` reads it)."""

    __tablename__ = "servers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    flavor: Mapped[str] = mapped_column(String(255))
    image: Mapped[str] = mapped_column(String(255))
    network: Mapped[str | None] = mapped_column(String(255), nullable=True)
    block_devices: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    task_operation_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    site_server_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Keypair(Base):
    """An SSH public key a project wants present at every one of its sites."""

    __tablename__ = "keypairs"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    public_key: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    task_operation_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class KeypairCopy(Base):
    """Where a keypair stands at one site."""

    __tablename__ = "keypair_copies"
    keypair_id: Mapped[str] = mapped_column(
        ForeignKey("keypairs.id", ondelete="CASCADE"), primary_key=True
    )
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Worker(Base):
    """A ``cascade worker`` process: its DBOS executor id and its heartbeat."""

    __tablename__ = "workers"
    executor_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recovered_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    recovered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ConvergencePass(Base):
    """One run of the periodic convergence pass: what it checked and what it repaired."""

    __tablename__ = "convergence_passes"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    executor_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    checked: Mapped[int] = mapped_column(Integer, default=0)
    repairs: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class FabricHost(Base):
    """A compute host with an agent: its tunnel endpoint, goal and applied revisions."""

    __tablename__ = "fabric_hosts"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    tunnel_ip: Mapped[str] = mapped_column(String(64))
    revision: Mapped[int] = mapped_column(Integer, default=0)
    applied_revision: Mapped[int] = mapped_column(Integer, default=0)
    ack_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    acked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Whether the agent's last acknowledgement said its dataplane enforces security rules.
    rules_enforced: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FabricNetwork(Base):
    """An overlay network (VXLAN segment) and the revision of its neighbour table."""

    __tablename__ = "fabric_networks"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    vni: Mapped[int] = mapped_column(Integer, unique=True)
    cidr: Mapped[str] = mapped_column(String(64))
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FabricPort(Base):
    """A VM port on one network: held by one host here (a local port) or, with ``host`` None, a
    neighbour at ``vtep``, a tunnel endpoint outside this fabric (a remote port)."""

    __tablename__ = "fabric_ports"
    __table_args__ = (
        UniqueConstraint("network_id", "mac"),
        UniqueConstraint("network_id", "ip"),
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    network_id: Mapped[str] = mapped_column(ForeignKey("fabric_networks.id"), index=True)
    host: Mapped[str | None] = mapped_column(
        ForeignKey("fabric_hosts.name"), index=True, nullable=True
    )
    vtep: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mac: Mapped[str] = mapped_column(String(17))
    ip: Mapped[str] = mapped_column(String(64))
    security_rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    port_security: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # addresses the port also holds (Neutron's allowed address pairs); NULL when none, so a
    # neighbour table leaves them out without looking into the JSON
    allowed_ips: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    # a router's interface: the router; a VM's port: its default gateway; a router's
    # interface: the router's extra routes ([destination, nexthop], NULL when none)
    router: Mapped[str | None] = mapped_column(String(64), nullable=True)
    gateway: Mapped[str | None] = mapped_column(String(64), nullable=True)
    routes: Mapped[list[list[str]] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FabricMembership(Base):
    """A host that has at least one port on a network, and the network revision it applied."""

    __tablename__ = "fabric_memberships"
    host: Mapped[str] = mapped_column(ForeignKey("fabric_hosts.name"), primary_key=True)
    network_id: Mapped[str] = mapped_column(
        ForeignKey("fabric_networks.id"), primary_key=True, index=True
    )
    applied_revision: Mapped[int] = mapped_column(Integer, default=0)


class IdentityChange(Base):
    """One row written to (or deleted from) an identity table, in commit order: what replicas
    follow. ``row`` is None for a deletion."""

    __tablename__ = "identity_changes"
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    table: Mapped[str] = mapped_column(String(64))
    key: Mapped[dict[str, Any]] = mapped_column(JSON)
    row: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReplicaState(Base):
    """At a replica: the master it follows and the last change applied (one row)."""

    __tablename__ = "replica_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    master_url: Mapped[str] = mapped_column(Text)
    seq: Mapped[int] = mapped_column(BigInteger)
    master_head: Mapped[int] = mapped_column(BigInteger)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The master's public node key, learnt at bootstrap: key bundles must be sealed by it.
    master_public_key: Mapped[str | None] = mapped_column(Text, nullable=True)


class IdentityReplica(Base):
    """At the master: a replica that follows the change log, and the position it last
    reported (the ``after`` of its latest poll)."""

    __tablename__ = "identity_replicas"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    public_key: Mapped[str | None] = mapped_column(Text, nullable=True)  # its node key
    key_set: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the set it holds


class IdentityKeySet(Base):
    """At the master: every Fernet key set it has had or staged, by id, with each key's
    fingerprint (never the key): what a site reporting an old set lacks."""

    __tablename__ = "identity_key_sets"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprints: Mapped[dict[str, str]] = mapped_column(JSON)  # key number -> fingerprint
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
