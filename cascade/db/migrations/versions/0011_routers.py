"""Routers between networks that span sites, and the networks each joins.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

TIMESTAMP = sa.DateTime(timezone=True)

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "routers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False, index=True),
        sa.Column(
            "transit_network_id", sa.String(64), sa.ForeignKey("networks.id"), nullable=False
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("task_operation_id", sa.String(32)),
        sa.Column("error", sa.Text),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("project_id", "name"),
    )
    op.create_table(
        "router_networks",
        sa.Column(
            "router_id",
            sa.String(64),
            sa.ForeignKey("routers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("network_id", sa.String(64), sa.ForeignKey("networks.id"), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("router_networks")
    op.drop_table("routers")
