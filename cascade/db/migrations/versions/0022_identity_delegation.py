"""Identity delegation (issue 18): application credentials and their access rules, trusts
(OS-TRUST); ``cascade.db.delegation_models``.

Revision ID: 0022
Revises: 0021
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _user(name: str) -> sa.Column[str]:
    return sa.Column(
        name, sa.String(64), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "access_rules",
        sa.Column("id", sa.String(64), primary_key=True),
        _user("user_id"),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("path", sa.String(225), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.UniqueConstraint("user_id", "service", "path", "method"),
    )
    op.create_index("ix_access_rules_user_id", "access_rules", ["user_id"])
    op.create_table(
        "application_credentials",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        _user("user_id"),
        sa.Column(
            "project_id",
            sa.String(64),
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unrestricted", sa.Boolean, nullable=False),
        sa.Column("roles", sa.JSON, nullable=False),
        sa.Column("access_rules", sa.JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("user_id", "name"),
    )
    op.create_index("ix_application_credentials_user_id", "application_credentials", ["user_id"])
    op.create_table(
        "trusts",
        sa.Column("id", sa.String(64), primary_key=True),
        _user("trustor_user_id"),
        _user("trustee_user_id"),
        sa.Column(
            "project_id",
            sa.String(64),
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("impersonation", sa.Boolean, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("remaining_uses", sa.Integer, nullable=True),
        sa.Column("redelegation_count", sa.Integer, nullable=False),
        sa.Column(
            "redelegated_trust_id",
            sa.String(64),
            sa.ForeignKey("trusts.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("roles", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_trusts_trustor_user_id", "trusts", ["trustor_user_id"])
    op.create_index("ix_trusts_trustee_user_id", "trusts", ["trustee_user_id"])


def downgrade() -> None:
    op.drop_table("trusts")
    op.drop_table("application_credentials")
    op.drop_table("access_rules")
