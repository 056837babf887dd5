"""Replication: an image item's bytes sent over every attempt of its copy
(``replication_items.bytes_sent``), so what an interruption cost is counted.

Revision ID: 0025
Revises: 0024
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("replication_items") as batch:
        batch.add_column(sa.Column("bytes_sent", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("replication_items") as batch:
        batch.drop_column("bytes_sent")
