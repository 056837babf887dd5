"""Protection: backups and restores. A plan's chunk store; a checkpoint's volumes as rows
(with their backup manifests) instead of a JSON column; the chunks stored; restores; and a
server's block device mapping (boot from a volume).

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

TIMESTAMP = sa.DateTime(timezone=True)

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("servers") as table:
        table.add_column(sa.Column("block_devices", sa.JSON))
    with op.batch_alter_table("protection_plans") as table:
        table.add_column(
            sa.Column("chunk_store", sa.String(512), nullable=False, server_default="")
        )
    with op.batch_alter_table("checkpoints") as table:
        table.drop_column("volumes")
        table.add_column(sa.Column("store_url", sa.String(512), nullable=False, server_default=""))
        table.add_column(sa.Column("backed_up_at", TIMESTAMP))
    op.create_table(
        "checkpoint_volumes",
        sa.Column(
            "checkpoint_id",
            sa.String(64),
            sa.ForeignKey("checkpoints.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("volume_id", sa.String(64), primary_key=True),
        sa.Column("server_id", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("snapshot_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("block_size", sa.Integer, nullable=False),
        sa.Column("parent_checkpoint_id", sa.String(64)),
        sa.Column("blocks", sa.JSON, nullable=False),
        sa.Column("changed_blocks", sa.Integer, nullable=False),
        sa.Column("done_blocks", sa.Integer, nullable=False),
        sa.Column("read_bytes", sa.BigInteger, nullable=False),
        sa.Column("stored_bytes", sa.BigInteger, nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_table(
        "stored_chunks",
        sa.Column("store_url", sa.String(512), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("claimed_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "restores",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False, index=True),
        sa.Column("plan_id", sa.String(64), nullable=False),
        sa.Column("checkpoint_id", sa.String(64), nullable=False),
        sa.Column("target_site_id", sa.String(64), sa.ForeignKey("sites.id"), nullable=False),
        sa.Column("mapping", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("operation_id", sa.String(32), nullable=False),
        sa.Column("volumes", sa.JSON, nullable=False),
        sa.Column("servers", sa.JSON, nullable=False),
        sa.Column("started_at", TIMESTAMP),
        sa.Column("finished_at", TIMESTAMP),
        sa.Column("rto_s", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("restores")
    op.drop_table("stored_chunks")
    op.drop_table("checkpoint_volumes")
    with op.batch_alter_table("checkpoints") as table:
        table.drop_column("backed_up_at")
        table.drop_column("store_url")
        table.add_column(sa.Column("volumes", sa.JSON, nullable=False, server_default="{}"))
    with op.batch_alter_table("protection_plans") as table:
        table.drop_column("chunk_store")
    with op.batch_alter_table("servers") as table:
        table.drop_column("block_devices")
