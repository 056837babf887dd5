"""Service IPs: an address of a network that moves between the servers on it.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

TIMESTAMP = sa.DateTime(timezone=True)

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "service_ips",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False, index=True),
        sa.Column(
            "network_id", sa.String(64), sa.ForeignKey("networks.id"), nullable=False, index=True
        ),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column(
            "holder_port_id", sa.String(64), sa.ForeignKey("network_ports.id"), nullable=False
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("task_operation_id", sa.String(32)),
        sa.Column("error", sa.Text),
        sa.Column("moved_at", TIMESTAMP),
        sa.Column("switchover_s", sa.Float),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("network_id", "ip"),
    )


def downgrade() -> None:
    op.drop_table("service_ips")
