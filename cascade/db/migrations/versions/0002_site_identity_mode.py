"""Sites record whether they keep their own identity or hold a copy of Cascade's.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.add_column(
            sa.Column("identity_mode", sa.String(16), nullable=False, server_default="own")
        )


def downgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.drop_column("identity_mode")
