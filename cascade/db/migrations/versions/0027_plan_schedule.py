"""Protection: a plan's checkpoint schedule (``protection_plans.checkpoint_every_s``,
seconds between scheduled checkpoints; null: only on request).

Revision ID: 0027
Revises: 0026
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("protection_plans") as batch:
        batch.add_column(sa.Column("checkpoint_every_s", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("protection_plans") as batch:
        batch.drop_column("checkpoint_every_s")
