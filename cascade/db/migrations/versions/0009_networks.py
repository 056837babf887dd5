"""Networks that span sites: networks (VNI and CIDR allocated centrally), their segment at
each site, the ports Cascade addressed on them, and those ports' remote copies at the other
sites.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

TIMESTAMP = sa.DateTime(timezone=True)

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "networks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False, index=True),
        sa.Column("cidr", sa.String(64), nullable=False),
        sa.Column("vni", sa.Integer, nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("task_operation_id", sa.String(32)),
        sa.Column("error", sa.Text),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("project_id", "name"),
    )
    op.create_table(
        "network_segments",
        sa.Column(
            "network_id",
            sa.String(64),
            sa.ForeignKey("networks.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("site_id", sa.String(64), sa.ForeignKey("sites.id"), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("site_network_id", sa.String(64)),
        sa.Column("site_subnet_id", sa.String(64)),
        sa.Column("error", sa.Text),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "network_ports",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "network_id", sa.String(64), sa.ForeignKey("networks.id"), nullable=False, index=True
        ),
        sa.Column("site_id", sa.String(64), sa.ForeignKey("sites.id"), nullable=False, index=True),
        sa.Column("server_id", sa.String(64), index=True),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("mac", sa.String(17), nullable=False),
        sa.Column("site_port_id", sa.String(64)),
        sa.Column("host", sa.String(255)),
        sa.Column("vtep", sa.String(64)),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("network_id", "ip"),
        sa.UniqueConstraint("network_id", "mac"),
    )
    op.create_table(
        "remote_ports",
        sa.Column(
            "port_id",
            sa.String(64),
            sa.ForeignKey("network_ports.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("site_id", sa.String(64), sa.ForeignKey("sites.id"), primary_key=True),
        sa.Column("site_port_id", sa.String(64)),
        sa.Column("vtep", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    for name in ("remote_ports", "network_ports", "network_segments", "networks"):
        op.drop_table(name)
