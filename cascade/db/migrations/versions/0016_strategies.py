"""Protection strategies 2 and 3: a checkpoint volume's replica reference at the replication
target (storage replication), and a checkpoint's server images (image snapshot: per server
its image at the source, its copy at the target and the digest they share).

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("checkpoint_volumes") as table:
        table.add_column(sa.Column("replica", sa.String(255)))
    with op.batch_alter_table("checkpoints") as table:
        table.add_column(sa.Column("images", sa.JSON, nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("checkpoints") as table:
        table.drop_column("images")
    with op.batch_alter_table("checkpoint_volumes") as table:
        table.drop_column("replica")
