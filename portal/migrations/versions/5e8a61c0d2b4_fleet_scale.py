"""fleet scale: container digests, health sweep workers, indexes of the hot queries

- hosts.containers_digest: a sweep compares each host's container listing with it and reads
  or writes the host's container rows only when it differs (existing hosts start without).
- health_sweep_workers: heartbeats of the workers that share health sweeps between them.
- monitoring_event_deliveries.event_ids: the events of a grouped webhook delivery.
- indexes: an operation's log lines by (operation_id, id); operations by (state, created_at)
  and by finished_at; applications by (name, host_id); host status changes by (host_id, at);
  host containers by state. The two composite indexes replace single-column ones they cover.

Revision ID: 5e8a61c0d2b4
Revises: f3a9d2c6b871
Create Date: 2026-12-04 21:00:00

"""

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = "5e8a61c0d2b4"
down_revision = "f3a9d2c6b871"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("containers_digest", sa.String(length=32), nullable=True))
    op.create_table(
        "health_sweep_workers",
        sa.Column("worker_id", sa.String(length=128), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("last_round", sa.BigInteger(), nullable=True),
        sa.Column("last_sweep_hosts", sa.Integer(), nullable=False),
        sa.Column("last_sweep_seconds", sa.Float(), nullable=False),
        sa.Column("last_shard", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_health_sweep_workers")),
    )
    with op.batch_alter_table("health_sweep_workers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_health_sweep_workers_heartbeat_at"), ["heartbeat_at"], unique=False
        )
    with op.batch_alter_table("operation_log_lines", schema=None) as batch_op:
        batch_op.create_index(
            "ix_operation_log_lines_operation_id_id", ["operation_id", "id"], unique=False
        )
        batch_op.drop_index(batch_op.f("ix_operation_log_lines_operation_id"))
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_operations_state_created_at", ["state", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_operations_finished_at"), ["finished_at"], unique=False)
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.create_index("ix_applications_name_host_id", ["name", "host_id"], unique=False)
    with op.batch_alter_table("host_status_changes", schema=None) as batch_op:
        batch_op.create_index("ix_host_status_changes_host_id_at", ["host_id", "at"], unique=False)
        batch_op.drop_index(batch_op.f("ix_host_status_changes_host_id"))
    with op.batch_alter_table("host_containers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_host_containers_state"), ["state"], unique=False)
    with op.batch_alter_table("monitoring_event_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_ids", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("monitoring_event_deliveries", schema=None) as batch_op:
        batch_op.drop_column("event_ids")
    with op.batch_alter_table("host_containers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_host_containers_state"))
    with op.batch_alter_table("host_status_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_host_status_changes_host_id"), ["host_id"], unique=False
        )
        batch_op.drop_index("ix_host_status_changes_host_id_at")
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_index("ix_applications_name_host_id")
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operations_finished_at"))
        batch_op.drop_index("ix_operations_state_created_at")
    with op.batch_alter_table("operation_log_lines", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_operation_log_lines_operation_id"), ["operation_id"], unique=False
        )
        batch_op.drop_index("ix_operation_log_lines_operation_id_id")
    op.drop_table("health_sweep_workers")
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.drop_column("containers_digest")
