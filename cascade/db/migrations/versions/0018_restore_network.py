"""Restores onto networks that span sites: a checkpoint's record of its servers' ports on
Cascade networks, and a restore's ports, service IP move and clean-up of a failure.

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("checkpoints") as table:
        table.add_column(sa.Column("ports", sa.JSON, nullable=False, server_default="{}"))
    with op.batch_alter_table("restores") as table:
        table.add_column(sa.Column("ports", sa.JSON, nullable=False, server_default="{}"))
        table.add_column(sa.Column("service_ip", sa.JSON))
        table.add_column(sa.Column("cleanup", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("restores") as table:
        table.drop_column("cleanup")
        table.drop_column("service_ip")
        table.drop_column("ports")
    with op.batch_alter_table("checkpoints") as table:
        table.drop_column("ports")
