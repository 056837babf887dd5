"""Fabric ports: the router a port is an interface of, a VM port's default gateway, and a
router interface's routes.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fabric_ports") as table:
        table.add_column(sa.Column("router", sa.String(64), nullable=True))
        table.add_column(sa.Column("gateway", sa.String(64), nullable=True))
        table.add_column(sa.Column("routes", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fabric_ports") as table:
        table.drop_column("routes")
        table.drop_column("gateway")
        table.drop_column("router")
