"""Keystone's domain-specific configuration (issue 18): ``domain_config_options``,
``cascade.db.domain_config_models``.

Revision ID: 0026
Revises: 0025
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "domain_config_options",
        sa.Column(
            "domain_id",
            sa.String(64),
            sa.ForeignKey("domains.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("group_name", sa.String(64), primary_key=True),
        sa.Column("option_name", sa.String(64), primary_key=True),
        sa.Column("value", sa.JSON, nullable=True),
        sa.Column("sensitive", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("domain_config_options")
