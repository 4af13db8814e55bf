"""hosts ids never reused on sqlite

SQLite hands a deleted row's id to the next row unless the table says AUTOINCREMENT; audit
records, operations and metrics name hosts by id. Postgres sequences never reuse ids.

Revision ID: 18411f15e88a
Revises: 6b1ef2b60668
Create Date: 2026-12-04 11:21:38.773293

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '18411f15e88a'
down_revision = '6b1ef2b60668'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "hosts", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ):
        pass


def downgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("hosts", recreate="always"):
        pass
