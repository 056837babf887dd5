"""Identity (issue 18): domain-specific roles (``roles.domain_id``, NULL for a global role).

Revision ID: 0023
Revises: 0022
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("roles", sa.Column("domain_id", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("roles", "domain_id")  # SQLite >= 3.35 drops it in place
