"""host_gpu_samples: each GPU's utilisation, memory, temperature and power per health sweep

The host page charts them over time; rows older than SPECTR_GPU_HISTORY_HOURS are deleted by
the sweep that writes new ones.

Revision ID: 228ce4659dcb
Revises: 5e8a61c0d2b4
Create Date: 2026-12-05 00:10:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "228ce4659dcb"
down_revision = "5e8a61c0d2b4"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "host_gpu_samples",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("gpu_index", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("utilization_percent", sa.Float(), nullable=True),
        sa.Column("memory_used_mib", sa.Integer(), nullable=True),
        sa.Column("memory_total_mib", sa.Integer(), nullable=True),
        sa.Column("temperature_celsius", sa.Float(), nullable=True),
        sa.Column("power_watts", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["hosts.id"],
            name=op.f("fk_host_gpu_samples_host_id_hosts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_host_gpu_samples")),
    )
    with op.batch_alter_table("host_gpu_samples", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_host_gpu_samples_at"), ["at"], unique=False)
        batch_op.create_index("ix_host_gpu_samples_host_id_at", ["host_id", "at"], unique=False)


def downgrade():
    with op.batch_alter_table("host_gpu_samples", schema=None) as batch_op:
        batch_op.drop_index("ix_host_gpu_samples_host_id_at")
        batch_op.drop_index(batch_op.f("ix_host_gpu_samples_at"))
    op.drop_table("host_gpu_samples")
