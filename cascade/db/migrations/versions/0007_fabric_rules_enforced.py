"""Fabric hosts: whether the host's agent said, in its last acknowledgement, that its
dataplane enforces the ports' security rules (no dataplane does yet: false until one does).

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fabric_hosts") as table:
        table.add_column(
            sa.Column("rules_enforced", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("fabric_hosts") as table:
        table.drop_column("rules_enforced")
