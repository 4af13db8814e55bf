"""operations and events carry their project (issue 16: every list filters by project)

- operations.project_id: the project of the host, application, route or key an operation
  acts on; NULL for the fleet's own work (registry, catalog, backups), counted as `default`'s.
- monitoring_events.project_id: the project of the host or operation an event is about.
- Backfilled where it is cheap: operations whose target is `host:<id>` or `app:<name>@<host>`,
  events whose key names a host (`host:`, `gpu:`, `container:`) or an operation.

Revision ID: d58a1f3c7b20
Revises: 111d3c14c507
Create Date: 2026-12-05 07:10:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "d58a1f3c7b20"
down_revision = "111d3c14c507"
branch_labels = None
depends_on = None

TABLES = ("operations", "monitoring_events")
HOST_ID = "CAST(hosts.id AS VARCHAR(20))"


def upgrade():
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("project_id", sa.Integer(), nullable=True))
            batch_op.create_index(f"ix_{table}_project_id", ["project_id"])
            batch_op.create_foreign_key(
                f"fk_{table}_project_id_projects",
                "projects",
                ["project_id"],
                ["id"],
                ondelete="SET NULL",
            )
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "UPDATE operations SET project_id = (SELECT hosts.project_id FROM hosts "
            f"WHERE operations.target = 'host:' || {HOST_ID}) "
            "WHERE operations.target LIKE 'host:%'"
        )
    )
    bind.execute(
        sa.text(
            "UPDATE operations SET project_id = (SELECT applications.project_id "
            "FROM applications JOIN hosts ON hosts.id = applications.host_id "
            "WHERE operations.target = 'app:' || applications.name || '@' || hosts.name) "
            "WHERE operations.target LIKE 'app:%'"
        )
    )
    bind.execute(
        sa.text(
            "UPDATE monitoring_events SET project_id = (SELECT hosts.project_id FROM hosts "
            f"WHERE monitoring_events.key = 'host:' || {HOST_ID} "
            f"OR monitoring_events.key LIKE 'gpu:' || {HOST_ID} || ':%' "
            f"OR monitoring_events.key LIKE 'container:' || {HOST_ID} || ':%') "
            "WHERE monitoring_events.key LIKE 'host:%' OR monitoring_events.key LIKE 'gpu:%' "
            "OR monitoring_events.key LIKE 'container:%'"
        )
    )
    bind.execute(
        sa.text(
            "UPDATE monitoring_events SET project_id = (SELECT operations.project_id "
            "FROM operations WHERE monitoring_events.key = 'operation:' || operations.id) "
            "WHERE monitoring_events.key LIKE 'operation:%'"
        )
    )


def downgrade():
    for table in reversed(TABLES):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(f"fk_{table}_project_id_projects", type_="foreignkey")
            batch_op.drop_index(f"ix_{table}_project_id")
            batch_op.drop_column("project_id")
