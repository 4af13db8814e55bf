"""identity: directory and OpenID users, TOTP, OpenID sign-in states

- users.source ("local", "ldap", "oidc") and users.external_id (the LDAP DN or "<issuer>|<sub>");
  every existing user is local.
- users.totp_secret (encrypted) and users.totp_enabled: optional second factor of local users.
- sign_in_states: the `state` of each OpenID Connect sign-in, so a replayed answer is refused.

Revision ID: a41c7e09b3d5
Revises: 228ce4659dcb
Create Date: 2026-12-05 00:00:00

"""

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = "a41c7e09b3d5"
down_revision = "228ce4659dcb"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("source", sa.String(length=16), nullable=False, server_default="local")
        )
        batch_op.add_column(sa.Column("external_id", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("totp_secret", sa.String(length=256), nullable=True))
        batch_op.add_column(
            sa.Column("totp_enabled", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_unique_constraint("uq_users_external_id", ["external_id"])
    op.create_table(
        "sign_in_states",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("state_hash"),
    )
    op.create_index("ix_sign_in_states_created_at", "sign_in_states", ["created_at"])


def downgrade():
    op.drop_index("ix_sign_in_states_created_at", table_name="sign_in_states")
    op.drop_table("sign_in_states")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint("uq_users_external_id", type_="unique")
        batch_op.drop_column("totp_enabled")
        batch_op.drop_column("totp_secret")
        batch_op.drop_column("external_id")
        batch_op.drop_column("source")
