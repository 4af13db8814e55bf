"""projects: tenants of the fleet, their members and quotas; everything existing in `default`

- projects (name, description, gpu_limit, application_limit) and project_members (one role,
  viewer/operator/admin, per user and project).
- hosts, applications, gateway_keys and proxy_routes get a project_id; every existing row lands
  in the `default` project, which this migration creates.
- every existing user becomes a member of `default` with their current global role.
- api_tokens.project_id and api_tokens.role: a token may be scoped to one project and a role.
- audit_events.project_id: the project an action was done in (no foreign key: the record
  outlives the project).

Revision ID: b3e71c5a9d42
Revises: 2625889e46ba
Create Date: 2026-12-05 03:50:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "b3e71c5a9d42"
down_revision = "2625889e46ba"
branch_labels = None
depends_on = None

OWNED = ("hosts", "applications", "gateway_keys", "proxy_routes")


def upgrade():
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("gpu_limit", sa.Integer(), nullable=True),
        sa.Column("application_limit", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("name", name="uq_projects_name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "project_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_project_members_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_project_members_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_project_members"),
        sa.UniqueConstraint("project_id", "user_id", name="uq_project_members_project_id"),
    )
    op.create_index("ix_project_members_project_id", "project_members", ["project_id"])
    op.create_index("ix_project_members_user_id", "project_members", ["user_id"])

    bind = op.get_bind()
    bind.execute(
        sa.text(
            "INSERT INTO projects (name, description, created_at) "
            "VALUES ('default', 'Everything that existed before projects.', CURRENT_TIMESTAMP)"
        )
    )
    default_id = bind.scalar(sa.text("SELECT id FROM projects WHERE name = 'default'"))
    bind.execute(
        sa.text(
            "INSERT INTO project_members (project_id, user_id, role, created_at) "
            "SELECT :project, id, role, CURRENT_TIMESTAMP FROM users"
        ),
        {"project": default_id},
    )

    for table in OWNED:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("project_id", sa.Integer(), nullable=True))
        bind.execute(sa.text(f"UPDATE {table} SET project_id = :project"), {"project": default_id})
        kwargs = {"table_kwargs": {"sqlite_autoincrement": True}} if table == "hosts" else {}
        with op.batch_alter_table(table, **kwargs) as batch_op:
            batch_op.alter_column("project_id", existing_type=sa.Integer(), nullable=False)
            batch_op.create_index(f"ix_{table}_project_id", ["project_id"])
            batch_op.create_foreign_key(
                f"fk_{table}_project_id_projects", "projects", ["project_id"], ["id"]
            )

    with op.batch_alter_table("api_tokens") as batch_op:
        batch_op.add_column(sa.Column("project_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("role", sa.String(length=16), nullable=True))
        batch_op.create_index("ix_api_tokens_project_id", ["project_id"])
        batch_op.create_foreign_key(
            "fk_api_tokens_project_id_projects",
            "projects",
            ["project_id"],
            ["id"],
            ondelete="CASCADE",
        )
    with op.batch_alter_table("audit_events") as batch_op:
        batch_op.add_column(sa.Column("project_id", sa.Integer(), nullable=True))
        batch_op.create_index("ix_audit_events_project_id", ["project_id"])


def downgrade():
    with op.batch_alter_table("audit_events") as batch_op:
        batch_op.drop_index("ix_audit_events_project_id")
        batch_op.drop_column("project_id")
    with op.batch_alter_table("api_tokens") as batch_op:
        batch_op.drop_constraint("fk_api_tokens_project_id_projects", type_="foreignkey")
        batch_op.drop_index("ix_api_tokens_project_id")
        batch_op.drop_column("role")
        batch_op.drop_column("project_id")
    for table in OWNED:
        kwargs = {"table_kwargs": {"sqlite_autoincrement": True}} if table == "hosts" else {}
        with op.batch_alter_table(table, **kwargs) as batch_op:
            batch_op.drop_constraint(f"fk_{table}_project_id_projects", type_="foreignkey")
            batch_op.drop_index(f"ix_{table}_project_id")
            batch_op.drop_column("project_id")
    op.drop_index("ix_project_members_user_id", table_name="project_members")
    op.drop_index("ix_project_members_project_id", table_name="project_members")
    op.drop_table("project_members")
    op.drop_table("projects")
