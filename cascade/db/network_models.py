"""Tables of networks that span sites: the network (its VNI and CIDR, allocated centrally),
its segment at each site, the ports Cascade addressed on it, and each port's remote copies at
the network's other sites. On the declarative base of ``models``; migration 0009."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cascade.db.models import Base, UTCDateTime, new_id, utcnow


class Network(Base):
    """A tenant network stretched over sites: one VXLAN segment (its VNI, unique while the
    row lives: released only once the network is deleted everywhere) and one CIDR."""

    __tablename__ = "networks"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    cidr: Mapped[str] = mapped_column(String(64))
    vni: Mapped[int] = mapped_column(Integer, unique=True)
    status: Mapped[str] = mapped_column(String(16))
    task_operation_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class NetworkSegment(Base):
    """The network at one site: the site's network and subnet, and where it stands
    (pending, present, error, deleting)."""

    __tablename__ = "network_segments"
    network_id: Mapped[str] = mapped_column(
        ForeignKey("networks.id", ondelete="CASCADE"), primary_key=True
    )
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    site_network_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    site_subnet_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class NetworkPort(Base):
    """An address Cascade gave out on a network: a server's port at its site. ``host`` and
    ``vtep`` are where the site bound it (the tunnel endpoint the other sites reach it at)."""

    __tablename__ = "network_ports"
    __table_args__ = (UniqueConstraint("network_id", "ip"), UniqueConstraint("network_id", "mac"))
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), index=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    server_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    ip: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(17))
    site_port_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    vtep: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RemotePort(Base):
    """A port's copy at another site of its network: a port there that carries the address,
    the MAC and the VTEP of the real one (``binding:profile.tunnel_ip``), so that site's L2
    population programs its hosts toward it. ``vtep`` is the endpoint it was made with."""

    __tablename__ = "remote_ports"
    port_id: Mapped[str] = mapped_column(
        ForeignKey("network_ports.id", ondelete="CASCADE"), primary_key=True
    )
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    site_port_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    vtep: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ServiceIP(Base):
    """An address of a network that moves between servers on it (a VNF's service IP): the
    port holding it is where every site's Neutron is told it lives (an allowed address pair
    on the holder's port at its site, on the holder's remote port elsewhere)."""

    __tablename__ = "service_ips"
    __table_args__ = (UniqueConstraint("network_id", "ip"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), index=True)
    ip: Mapped[str] = mapped_column(String(64))
    holder_port_id: Mapped[str] = mapped_column(ForeignKey("network_ports.id"))
    status: Mapped[str] = mapped_column(String(16))
    task_operation_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    moved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    switchover_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Router(Base):
    """Routes between networks of a project, wherever their sites are: at every site of its
    networks a site router with their gateways, joined to the other sites' by a transit
    network (a network of its own, stretched over all of them)."""

    __tablename__ = "routers"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    transit_network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"))
    status: Mapped[str] = mapped_column(String(16))
    task_operation_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RouterNetwork(Base):
    """A network a router joins."""

    __tablename__ = "router_networks"
    router_id: Mapped[str] = mapped_column(
        ForeignKey("routers.id", ondelete="CASCADE"), primary_key=True
    )
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), primary_key=True)
