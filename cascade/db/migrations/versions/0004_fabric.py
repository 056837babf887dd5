"""The southbound fabric's goal state: hosts, networks, ports, memberships and revisions.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

TIMESTAMP = sa.DateTime(timezone=True)

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("fabric_memberships", "fabric_ports", "fabric_networks", "fabric_hosts")


def upgrade() -> None:
    op.create_table(
        "fabric_hosts",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("tunnel_ip", sa.String(64), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("applied_revision", sa.Integer, nullable=False),
        sa.Column("ack_seq", sa.BigInteger),
        sa.Column("acked_at", TIMESTAMP),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "fabric_networks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("vni", sa.Integer, nullable=False, unique=True),
        sa.Column("cidr", sa.String(64), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "fabric_ports",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("network_id", sa.String(64), sa.ForeignKey("fabric_networks.id"), nullable=False),
        sa.Column("host", sa.String(255), sa.ForeignKey("fabric_hosts.name"), nullable=False),
        sa.Column("mac", sa.String(17), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("security_rules", sa.JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("network_id", "mac"),
        sa.UniqueConstraint("network_id", "ip"),
    )
    op.create_index("ix_fabric_ports_network_id", "fabric_ports", ["network_id"])
    op.create_index("ix_fabric_ports_host", "fabric_ports", ["host"])
    op.create_table(
        "fabric_memberships",
        sa.Column("host", sa.String(255), sa.ForeignKey("fabric_hosts.name"), primary_key=True),
        sa.Column(
            "network_id", sa.String(64), sa.ForeignKey("fabric_networks.id"), primary_key=True
        ),
        sa.Column("applied_revision", sa.Integer, nullable=False),
    )
    op.create_index("ix_fabric_memberships_network_id", "fabric_memberships", ["network_id"])


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
